"""What an operator configures: the settings (environment, file), the centre file (tenants, queues, service-level targets, alert rules)."""
