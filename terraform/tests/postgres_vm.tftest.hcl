# Run from the example directory (see terraform/README.md):
#   terraform -chdir=terraform/examples/complete test -test-directory=../../tests

mock_provider "google" {}

variables {
  project_id         = "oa-test-project"
  zone               = "us-central1-a"
  subnetwork         = "projects/oa-test-project/regions/us-central1/subnetworks/orchestrator-subnet"
  subnet_cidr        = "10.10.0.0/24"
  internal_ip        = "10.10.0.2"
  password_secret_id = "projects/oa-test-project/secrets/orchestrator-postgres-password"
  backup_target      = "gs://oa-test-backups/backups"
  agent_package      = "gs://oa-test-artifacts/packages/orchestrator-agent_0.1.0+1.gabc1234_amd64.deb"
  agent_sha256       = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  connector_cidr     = "10.8.0.0/28"
  nat_id             = "projects/oa-test-project/regions/us-central1/routers/orchestrator-router/orchestrator-nat"
  cloud_init_path    = "../../tests/fixtures/cloud-init.yaml"
}

run "private_hardened_vm" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  assert {
    condition     = length(google_compute_instance.this.network_interface[0].access_config) == 0
    error_message = "the database VM must have no access_config (no public IP)"
  }
  assert {
    condition     = google_compute_instance.this.machine_type == "e2-micro"
    error_message = "e2-micro is the default machine type"
  }
  assert {
    condition = (
      google_compute_instance.this.shielded_instance_config[0].enable_secure_boot &&
      google_compute_instance.this.shielded_instance_config[0].enable_vtpm &&
      google_compute_instance.this.shielded_instance_config[0].enable_integrity_monitoring
    )
    error_message = "the VM must be a shielded VM"
  }
  assert {
    condition     = google_compute_instance.this.metadata["enable-oslogin"] == "TRUE"
    error_message = "OS Login must be on"
  }
  assert {
    condition     = google_compute_instance.this.boot_disk[0].initialize_params[0].image == "ubuntu-os-cloud/ubuntu-2404-lts-amd64"
    error_message = "the default image is Ubuntu 24.04 LTS (runs cloud-init)"
  }
  assert {
    condition     = google_compute_instance.this.attached_disk[0].device_name == "pgdata"
    error_message = "the data disk is attached as device pgdata"
  }
  assert {
    condition     = google_compute_instance.this.metadata["user-data"] == file("../../tests/fixtures/cloud-init.yaml")
    error_message = "user-data is the static cloud-init file"
  }
  assert {
    condition = alltrue([
      for k in [
        "oa-db-name", "oa-db-user", "oa-password-secret", "oa-backup-target", "oa-connector-cidr", "oa-data-device", "oa-workers",
        "oa-agent-package", "oa-agent-sha256", "oa-agent-allow-downgrade", "oa-agent-allow-dirty",
      ] :
      contains(keys(google_compute_instance.this.metadata), k)
    ])
    error_message = "every oa-* attribute of the bootstrap contract is set"
  }
  assert {
    condition     = google_compute_instance.this.metadata["oa-password-secret"] == var.password_secret_id && google_compute_instance.this.metadata["oa-workers"] == "1"
    error_message = "metadata carries the secret's name, never its value"
  }
  assert {
    condition = (
      google_compute_instance.this.metadata["oa-agent-package"] == var.agent_package &&
      google_compute_instance.this.metadata["oa-agent-sha256"] == var.agent_sha256 &&
      google_compute_instance.this.metadata["oa-agent-allow-downgrade"] == "false" &&
      google_compute_instance.this.metadata["oa-agent-allow-dirty"] == "false"
    )
    error_message = "the package, its digest and both flags (off by default) reach the installer"
  }
  assert {
    condition     = !contains(keys(google_compute_instance.this.metadata), "oa-agent-source")
    error_message = "the source zip attribute is gone"
  }
  assert {
    condition     = google_compute_address.internal.address_type == "INTERNAL" && google_compute_address.internal.address == "10.10.0.2"
    error_message = "the VM gets the reserved internal address"
  }
  assert {
    condition     = toset([for m in google_project_iam_member.vm : m.role]) == toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])
    error_message = "the VM's service account gets only log and metric writer roles at project level"
  }
  assert {
    condition     = terraform_data.nat.input == var.nat_id
    error_message = "the instance waits for the NAT through terraform_data.nat"
  }
}

run "ip_outside_subnet_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    internal_ip = "10.8.0.2"
  }

  expect_failures = [google_compute_address.internal]
}

run "gateway_ip_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    internal_ip = "10.10.0.1"
  }

  expect_failures = [google_compute_address.internal]
}

run "debian_image_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    image = "debian-cloud/debian-11"
  }

  expect_failures = [var.image]
}

run "dirty_package_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    agent_package = "gs://oa-test-artifacts/packages/orchestrator-agent_0.1.0+1.gabc1234+dirty_amd64.deb"
  }

  expect_failures = [google_compute_instance.this]
}

run "dirty_package_and_downgrade_allowed" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    agent_package       = "gs://oa-test-artifacts/packages/orchestrator-agent_0.1.0+1.gabc1234+dirty_amd64.deb"
    allow_dirty_package = true
    allow_downgrade     = true
  }

  assert {
    condition     = google_compute_instance.this.metadata["oa-agent-allow-dirty"] == "true" && google_compute_instance.this.metadata["oa-agent-allow-downgrade"] == "true"
    error_message = "the flags reach the installer as the strings true/false"
  }
}

run "uppercase_sha256_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    agent_sha256 = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
  }

  expect_failures = [var.agent_sha256]
}

run "source_zip_is_refused" {
  command = plan

  module {
    source = "../../modules/postgres-vm"
  }

  variables {
    agent_package = "gs://oa-test-backups/agent/orchestrator-agent-src.zip"
  }

  expect_failures = [var.agent_package]
}
