output "network_self_link" {
  description = "Self link of the VPC network (created or existing)."
  value       = local.network_self_link
}

output "network_name" {
  description = "Name of the VPC network (from the resource, so users wait for it)."
  value       = var.create_network ? google_compute_network.this[0].name : data.google_compute_network.existing[0].name
}

output "subnet_self_link" {
  description = "Self link of the subnet that holds the database VM."
  value       = google_compute_subnetwork.this.self_link
}

output "subnet_cidr" {
  description = "Primary IPv4 range of the subnet."
  value       = google_compute_subnetwork.this.ip_cidr_range
}

output "connector_cidr" {
  description = "The connector /28 the PostgreSQL firewall rule admits."
  value       = var.connector_cidr
}

output "firewall_rule_names" {
  description = "Names of the ingress rules for PostgreSQL and IAP SSH."
  value       = [google_compute_firewall.postgres_from_connector.name, google_compute_firewall.ssh_from_iap.name]
}

output "nat_id" {
  description = "ID of the Cloud NAT (null when create_nat is false). Pass it to postgres-vm's nat_id: the VM's first boot installs packages through it, so the VM must not start before it exists."
  value       = one(google_compute_router_nat.this[*].id)
}
