# The URIs wait for the IAM grants, so the VM that references them boots
# after it may read and write the bucket.

output "name" {
  description = "Bucket name."
  value       = google_storage_bucket.this.name
}

output "url" {
  description = "gs:// URL of the bucket."
  value       = google_storage_bucket.this.url
}

output "backup_target" {
  description = "gs://BUCKET/PREFIX: the agent's [backup] target and the VM's oa-backup-target attribute."
  value       = "gs://${google_storage_bucket.this.name}/${var.backup_prefix}"
  depends_on  = [google_storage_bucket_iam_member.writer]
}

output "agent_source_uri" {
  description = "gs:// URI of the uploaded source zip (the VM's oa-agent-source attribute); null when the upload is off."
  value       = local.upload ? "gs://${google_storage_bucket.this.name}/${google_storage_bucket_object.agent_source[0].name}" : null
  depends_on  = [google_storage_bucket_iam_member.writer]
}

output "agent_source_md5" {
  description = "MD5 of the uploaded source zip; changes whenever the source does."
  value       = local.upload ? data.archive_file.agent_source[0].output_md5 : null
}
