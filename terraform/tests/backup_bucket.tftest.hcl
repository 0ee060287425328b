mock_provider "google" {}

variables {
  project_id                   = "oa-test-project"
  name                         = "oa-test-backups"
  location                     = "us-central1"
  backup_retention_days        = 14
  writer_service_account_email = "orchestrator-postgres-vm@oa-test-project.iam.gserviceaccount.com"
}

run "hardened_bucket" {
  command = plan

  module {
    source = "../../modules/backup-bucket"
  }

  assert {
    condition     = google_storage_bucket.this.uniform_bucket_level_access && google_storage_bucket.this.public_access_prevention == "enforced"
    error_message = "uniform access and enforced public access prevention"
  }
  assert {
    condition     = google_storage_bucket.this.versioning[0].enabled
    error_message = "versioning is on"
  }
  assert {
    condition     = google_storage_bucket.this.lifecycle_rule[0].condition[0].age == 14
    error_message = "backups are deleted after backup_retention_days"
  }
  assert {
    condition     = toset([for m in google_storage_bucket_iam_member.writer : m.role]) == toset(["roles/storage.objectCreator", "roles/storage.objectViewer", "roles/storage.objectUser"])
    error_message = "the VM gets create, read and (for pruning) delete"
  }
  assert {
    condition     = alltrue([for m in google_storage_bucket_iam_member.writer : m.member == "serviceAccount:${var.writer_service_account_email}"])
    error_message = "only the VM's service account is granted"
  }
  assert {
    condition     = output.backup_target == "gs://oa-test-backups/backups"
    error_message = "backup_target is gs://BUCKET/PREFIX"
  }
}

run "no_delete" {
  command = plan

  module {
    source = "../../modules/backup-bucket"
  }

  variables {
    allow_delete = false
  }

  assert {
    condition     = !contains([for m in google_storage_bucket_iam_member.writer : m.role], "roles/storage.objectUser")
    error_message = "allow_delete = false grants no delete"
  }
}
