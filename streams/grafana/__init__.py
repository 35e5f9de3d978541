"""Everything a person looks at in Grafana: dashboards as code, alert rules, publishing."""
