mock_provider "google" {}

variables {
  project_id               = "oa-test-project"
  region                   = "us-central1"
  db_service_account_email = "orchestrator-postgres-vm@oa-test-project.iam.gserviceaccount.com"
}

run "postgres_only_from_connector" {
  command = plan

  module {
    source = "../../modules/network"
  }

  assert {
    condition     = google_compute_firewall.postgres_from_connector.source_ranges == toset(["10.8.0.0/28"])
    error_message = "5432 must be open to the connector /28 only"
  }
  assert {
    condition     = one(google_compute_firewall.postgres_from_connector.allow).ports == tolist(["5432"])
    error_message = "the PostgreSQL rule admits port 5432 only"
  }
  assert {
    condition     = google_compute_firewall.postgres_from_connector.target_service_accounts == toset([var.db_service_account_email])
    error_message = "the PostgreSQL rule targets the VM's service account"
  }
  assert {
    condition     = google_compute_firewall.ssh_from_iap.source_ranges == toset(["35.235.240.0/20"])
    error_message = "SSH only from the IAP range"
  }
  assert {
    condition     = length(google_compute_router_nat.this) == 1
    error_message = "Cloud NAT gives the VM egress without a public IP"
  }
  assert {
    condition     = google_compute_subnetwork.this.private_ip_google_access
    error_message = "Private Google Access stays on (the VM reaches Cloud Storage and Secret Manager without NAT)"
  }
}

run "no_nat_no_nat_id" {
  command = plan

  module {
    source = "../../modules/network"
  }

  variables {
    create_nat = false
  }

  assert {
    condition     = length(google_compute_router_nat.this) == 0 && output.nat_id == null
    error_message = "create_nat = false creates no NAT and nat_id is null"
  }
}

run "overlapping_connector_is_refused" {
  command = plan

  module {
    source = "../../modules/network"
  }

  variables {
    subnet_cidr    = "10.8.0.0/24"
    connector_cidr = "10.8.0.0/28"
  }

  expect_failures = [google_compute_subnetwork.this]
}

run "open_ssh_is_refused" {
  command = plan

  module {
    source = "../../modules/network"
  }

  variables {
    iap_ssh_ranges = ["0.0.0.0/0"]
  }

  expect_failures = [var.iap_ssh_ranges]
}
