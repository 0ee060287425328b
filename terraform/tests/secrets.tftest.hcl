mock_provider "google" {}
mock_provider "random" {}

variables {
  project_id = "oa-test-project"
  accessors = {
    vm        = "orchestrator-postgres-vm@oa-test-project.iam.gserviceaccount.com"
    cloud_run = "orchestrator-run@oa-test-project.iam.gserviceaccount.com"
  }
}

run "write_only_password_and_two_accessors" {
  command = plan

  module {
    source = "../../modules/secrets"
  }

  assert {
    condition     = google_secret_manager_secret_version.this.secret_data_wo_version == 1
    error_message = "the password is written through the write-only argument"
  }
  assert {
    condition     = google_secret_manager_secret_version.this.secret_data == null
    error_message = "the password must not be stored through secret_data (it would land in state)"
  }
  assert {
    condition     = toset([for m in google_secret_manager_secret_iam_member.accessor : m.member]) == toset([for e in values(var.accessors) : "serviceAccount:${e}"])
    error_message = "exactly the VM's and Cloud Run's service accounts may read the secret"
  }
  assert {
    condition     = alltrue([for m in google_secret_manager_secret_iam_member.accessor : m.role == "roles/secretmanager.secretAccessor"])
    error_message = "accessors get secretAccessor only"
  }
}
