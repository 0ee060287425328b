mock_provider "google" {}

variables {
  project_id   = "oa-test-project"
  region       = "us-central1"
  network_name = "orchestrator-vpc"
}

run "defaults" {
  command = plan

  module {
    source = "../../modules/vpc-connector"
  }

  assert {
    condition     = google_vpc_access_connector.this.ip_cidr_range == "10.8.0.0/28"
    error_message = "the connector gets its own /28"
  }
}

run "seed_connector_name_is_refused" {
  command = plan

  module {
    source = "../../modules/vpc-connector"
  }

  variables {
    # The seed's name: 30 characters, over the API's 25.
    name = "orchestrator-backend-connector"
  }

  expect_failures = [var.name]
}

run "non_28_range_is_refused" {
  command = plan

  module {
    source = "../../modules/vpc-connector"
  }

  variables {
    ip_cidr_range = "10.8.0.0/24"
  }

  expect_failures = [var.ip_cidr_range]
}
