locals {
  # "" means the repository this module lives in.
  source_dir = var.agent_source_dir == "" ? abspath("${path.module}/../../..") : var.agent_source_dir
  upload     = var.agent_source_dir != null

  source_object = "agent/orchestrator-agent-src.zip"

  # Never ship build output, VCS data, local state or caches to the VM.
  source_excludes = [
    ".git", "build", ".demo", "bench/.cache", "tests/.cache",
    "**/.terraform", "**/*.tfstate", "**/*.tfstate.*", "**/.terraform.tfstate.lock.info",
    "**/terraform.tfvars", "**/*.auto.tfvars",
  ]

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

data "archive_file" "agent_source" {
  count = local.upload ? 1 : 0

  type        = "zip"
  source_dir  = local.source_dir
  excludes    = local.source_excludes
  output_path = "${path.root}/.terraform/tmp/orchestrator-agent-src.zip"
}

# Content changes replace the object, so the VM (and a rebuilt one) always
# fetches the source matching this apply.
resource "terraform_data" "agent_source_md5" {
  count = local.upload ? 1 : 0

  input = data.archive_file.agent_source[0].output_md5
}

resource "google_storage_bucket_object" "agent_source" {
  count = local.upload ? 1 : 0

  bucket       = google_storage_bucket.this.name
  name         = local.source_object
  source       = data.archive_file.agent_source[0].output_path
  content_type = "application/zip"

  lifecycle {
    replace_triggered_by = [terraform_data.agent_source_md5[0]]
  }
}
