output "cloud_run_url" {
  description = "URL of the orchestrator service."
  value       = google_cloud_run_v2_service.orchestrator.uri
}

output "postgres_host" {
  description = "Internal IP of the database VM (POSTGRES_HOST)."
  value       = module.postgres_vm.internal_ip
}

output "postgres_vm_name" {
  description = "Name of the database VM."
  value       = module.postgres_vm.instance_name
}

output "ssh_command" {
  description = "SSH to the VM through IAP with OS Login (needs roles/iap.tunnelResourceAccessor and roles/compute.osAdminLogin)."
  value       = "gcloud compute ssh ${module.postgres_vm.instance_name} --zone=${var.zone} --tunnel-through-iap --project=${var.project_id}"
}

output "password_secret_id" {
  description = "Secret Manager secret holding the database password (read it with gcloud secrets versions access latest --secret=...)."
  value       = module.secrets.secret_id
}

output "backup_target" {
  description = "Where the agent writes backups."
  value       = module.backup_bucket.backup_target
}

output "connector_id" {
  description = "Serverless VPC Access connector used by Cloud Run."
  value       = module.vpc_connector.id
}

output "agent_package" {
  description = "gs:// URI of the agent package the VM installs (oa-agent-package)."
  value       = module.artifacts.package_uri
}

output "agent_sha256" {
  description = "SHA-256 of that package (oa-agent-sha256); compare with sha256sum of the local .deb."
  value       = module.artifacts.package_sha256
}
