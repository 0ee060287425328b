resource "google_secret_manager_secret" "this" {
  project   = var.project_id
  secret_id = var.secret_id
  labels    = var.labels

  replication {
    auto {}
  }
}

# Ephemeral: generated for this run only, never written to plan or state.
# Characters are limited to ones that need no quoting in a libpq conninfo,
# an environment variable or a URL.
ephemeral "random_password" "db" {
  length           = var.password_length
  special          = true
  override_special = "-_.~"
  min_lower        = 2
  min_upper        = 2
  min_numeric      = 2
}

resource "google_secret_manager_secret_version" "this" {
  secret = google_secret_manager_secret.this.id

  # Write-only: sent to Secret Manager when password_version changes, kept
  # out of state; the VM and Cloud Run read version "latest".
  secret_data_wo         = ephemeral.random_password.db.result
  secret_data_wo_version = var.password_version
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = var.accessors

  project   = var.project_id
  secret_id = google_secret_manager_secret.this.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value}"
}
