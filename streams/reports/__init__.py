"""Reports for people outside the centre: the monthly client report (client.py builds it, pure;
render.py writes it as CSV, Excel or PDF)."""
