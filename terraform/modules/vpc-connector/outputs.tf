output "id" {
  description = "Connector ID (projects/P/locations/R/connectors/NAME), for Cloud Run's vpc_access.connector."
  value       = google_vpc_access_connector.this.id
}

output "name" {
  description = "Connector name."
  value       = google_vpc_access_connector.this.name
}

output "ip_cidr_range" {
  description = "The connector's /28: the only source the database accepts."
  value       = google_vpc_access_connector.this.ip_cidr_range
}
