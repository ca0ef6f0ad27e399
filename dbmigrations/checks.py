"""Django system checks for SQL migration and seed files (registered in AppConfig.ready)."""
