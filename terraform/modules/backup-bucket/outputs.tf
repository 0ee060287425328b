# backup_target waits for the IAM grants, so the VM that references it
# boots after it may read and write the bucket.

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
