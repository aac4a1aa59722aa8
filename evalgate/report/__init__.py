"""The sweep report and the dashboard pages: view models, tables, charts, HTML."""
