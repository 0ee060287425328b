# Only names leave this module, never the password.  The outputs wait for
# the first version and the accessor bindings, so a consumer (the VM's
# bootstrap, Cloud Run) that references them starts after both exist.

output "secret_id" {
  description = "Full secret name projects/PROJECT/secrets/SECRET (the VM's oa-password-secret attribute; read version latest)."
  value       = google_secret_manager_secret.this.id
  depends_on  = [google_secret_manager_secret_version.this, google_secret_manager_secret_iam_member.accessor]
}

output "secret_short_name" {
  description = "Secret ID without the project (what Cloud Run's secret_key_ref takes in the same project)."
  value       = google_secret_manager_secret.this.secret_id
  depends_on  = [google_secret_manager_secret_version.this, google_secret_manager_secret_iam_member.accessor]
}
