# The whole example with mocked providers: the wiring between modules and
# Cloud Run.  Needs provision/cloud-init.yaml (read by file()); the .deb
# is a stand-in (only its name and digest matter here).
mock_provider "google" {}
mock_provider "random" {}

variables {
  project_id      = "oa-test-project"
  cloud_run_image = "us-docker.pkg.dev/cloudrun/container/hello"
  agent_package   = "../../tests/fixtures/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
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

run "package_wiring" {
  command = plan

  assert {
    condition     = output.agent_package == "gs://oa-test-project-orchestrator-artifacts/packages/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
    error_message = "the package goes to packages/BASENAME in the artifacts bucket, not the backup bucket"
  }
  assert {
    condition     = output.agent_sha256 == filesha256(var.agent_package)
    error_message = "the VM is told the sha256 of the local .deb"
  }
}

run "not_a_package_is_refused" {
  command = plan

  variables {
    agent_package = "../../tests/fixtures/cloud-init.yaml"
  }

  expect_failures = [var.agent_package]
}

run "seed_connector_name_is_refused" {
  command = plan

  variables {
    connector_name = "orchestrator-backend-connector"
  }

  expect_failures = [var.connector_name]
}
