# Paths are relative to the directory terraform test runs in
# (terraform/examples/complete, see terraform/README.md).
mock_provider "google" {}

variables {
  project_id                   = "oa-test-project"
  name                         = "oa-test-artifacts"
  location                     = "us-central1"
  agent_package                = "../../tests/fixtures/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
  reader_service_account_email = "orchestrator-postgres-vm@oa-test-project.iam.gserviceaccount.com"
}

run "read_only_package_bucket" {
  command = plan

  module {
    source = "../../modules/artifacts"
  }

  assert {
    condition     = google_storage_bucket.this.uniform_bucket_level_access && google_storage_bucket.this.public_access_prevention == "enforced"
    error_message = "uniform access and enforced public access prevention"
  }
  assert {
    condition     = google_storage_bucket.this.versioning[0].enabled
    error_message = "versioning is on (replaced packages stay as noncurrent versions)"
  }
  assert {
    condition     = google_storage_bucket_iam_member.reader.role == "roles/storage.objectViewer" && google_storage_bucket_iam_member.reader.member == "serviceAccount:${var.reader_service_account_email}"
    error_message = "the VM may only read the package"
  }
  assert {
    condition     = google_storage_bucket_object.agent_package.name == "packages/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
    error_message = "the package is stored as packages/BASENAME"
  }
  assert {
    condition     = output.package_uri == "gs://oa-test-artifacts/packages/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
    error_message = "package_uri is gs://BUCKET/OBJECT"
  }
  assert {
    condition     = output.package_sha256 == filesha256(var.agent_package) && can(regex("^[0-9a-f]{64}$", output.package_sha256))
    error_message = "package_sha256 is the lowercase hex sha256 of the local file"
  }
}

run "not_a_package_is_refused" {
  command = plan

  module {
    source = "../../modules/artifacts"
  }

  variables {
    agent_package = "../../tests/fixtures/cloud-init.yaml"
  }

  expect_failures = [var.agent_package]
}

run "missing_package_is_refused" {
  command = plan

  module {
    source = "../../modules/artifacts"
  }

  variables {
    agent_package = "../../tests/fixtures/orchestrator-agent_9.9.9_amd64.deb"
  }

  expect_failures = [var.agent_package]
}
