output "instance_name" {
  description = "Name of the database VM."
  value       = google_compute_instance.this.name
}

output "instance_id" {
  description = "ID of the database VM."
  value       = google_compute_instance.this.id
}

output "internal_ip" {
  description = "The VM's reserved internal IP: POSTGRES_HOST for Cloud Run."
  value       = google_compute_address.internal.address
}

output "service_account_email" {
  description = "Email of the VM's dedicated service account (grant it bucket and secret access)."
  value       = google_service_account.vm.email
}

output "data_disk_id" {
  description = "ID of the persistent data disk that outlives the VM."
  value       = google_compute_disk.data.id
}

output "zone" {
  description = "Zone of the VM."
  value       = google_compute_instance.this.zone
}
