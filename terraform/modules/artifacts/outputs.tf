# The URI waits for the upload and the read grant, so a VM whose metadata
# references it boots when it can fetch the package.

output "name" {
  description = "Bucket name."
  value       = google_storage_bucket.this.name
}

output "package_uri" {
  description = "gs://BUCKET/packages/BASENAME of the uploaded .deb: the VM's oa-agent-package attribute."
  value       = "gs://${google_storage_bucket.this.name}/${google_storage_bucket_object.agent_package.name}"
  depends_on  = [google_storage_bucket_iam_member.reader]
}

output "package_sha256" {
  description = "Lowercase hex SHA-256 of the .deb (filesha256 of agent_package): the VM's oa-agent-sha256 attribute."
  value       = local.package_sha256
}

output "package_object" {
  description = "Object name of the .deb in the bucket (packages/BASENAME)."
  value       = google_storage_bucket_object.agent_package.name
}
