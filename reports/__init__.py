"""Reports finlake writes for people: the demo page and the statistics report (Table 4 analog)."""
