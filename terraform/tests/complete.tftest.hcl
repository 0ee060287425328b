# The whole example with mocked providers: the wiring between modules and
# Cloud Run.  Needs provision/cloud-init.yaml (read by file()).
mock_provider "google" {}
mock_provider "random" {}
mock_provider "archive" {}

variables {
  project_id      = "oa-test-project"
  cloud_run_image = "us-docker.pkg.dev/cloudrun/container/hello"
}

run "cloud_run_wiring" {
  command = plan

  assert {
    condition     = google_cloud_run_v2_service.orchestrator.template[0].vpc_access[0].egress == "PRIVATE_RANGES_ONLY"
    error_message = "Cloud Run sends only private ranges through the connector"
  }
  assert {
    condition = {
      for e in google_cloud_run_v2_service.orchestrator.template[0].containers[0].env : e.name => e.value if e.value != null && e.value != ""
      } == {
      USE_POSTGRESQL = "true"
      POSTGRES_HOST  = "10.10.0.2"
      POSTGRES_PORT  = "5432"
      POSTGRES_DB    = "orchestrator"
      POSTGRES_USER  = "orchestrator"
    }
    error_message = "Cloud Run gets the seed's PostgreSQL environment"
  }
  assert {
    condition = one([
      for e in google_cloud_run_v2_service.orchestrator.template[0].containers[0].env :
      e.value_source[0].secret_key_ref[0].version if e.name == "POSTGRES_PASSWORD"
    ]) == "latest"
    error_message = "POSTGRES_PASSWORD comes from Secret Manager, version latest"
  }
  assert {
    condition     = module.postgres_vm.internal_ip == "10.10.0.2" || module.postgres_vm.internal_ip == null
    error_message = "the database IP lies in the subnet, not in the connector range"
  }
}

run "seed_connector_name_is_refused" {
  command = plan

  variables {
    connector_name = "orchestrator-backend-connector"
  }

  expect_failures = [var.connector_name]
}
