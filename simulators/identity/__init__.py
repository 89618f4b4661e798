"""A real-name identity service simulator (实名认证): does a name go with a resident ID number."""
