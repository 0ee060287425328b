locals {
  writer_roles = concat(
    ["roles/storage.objectCreator", "roles/storage.objectViewer"],
    var.allow_delete ? ["roles/storage.objectUser"] : [],
  )
}

resource "google_storage_bucket" "this" {
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Backups older than the retention are deleted even if the agent's own
  # pruning never runs.
  lifecycle_rule {
    condition {
      age            = var.backup_retention_days
      matches_prefix = ["${var.backup_prefix}/"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # Noncurrent versions (pruned or overwritten objects) go after a grace period.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# Bucket-level grants for the database VM only: create, read/list and (for
# pruning) delete objects; nothing on the bucket's own settings or IAM.
resource "google_storage_bucket_iam_member" "writer" {
  for_each = toset(local.writer_roles)

  bucket = google_storage_bucket.this.name
  role   = each.value
  member = "serviceAccount:${var.writer_service_account_email}"
}
