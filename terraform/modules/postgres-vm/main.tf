locals {
  region          = join("-", slice(split("-", var.zone), 0, 2))
  cloud_init_path = coalesce(var.cloud_init_path, "${path.module}/../../../provision/cloud-init.yaml")

  # Per-deployment values for the bootstrap (the shared contract); the
  # cloud-init file itself stays static.  Names only: the password is read
  # from Secret Manager on the VM.
  oa_attributes = {
    oa-db-name         = var.db_name
    oa-db-user         = var.db_user
    oa-password-secret = var.password_secret_id
    oa-backup-target   = var.backup_target
    oa-connector-cidr  = var.connector_cidr
    oa-data-device     = var.data_device_name
    oa-workers         = tostring(var.workers)

    # The package the VM's installer fetches, verifies and installs; its
    # watcher acts on changes of these without a reboot.
    oa-agent-package         = var.agent_package
    oa-agent-sha256          = var.agent_sha256
    oa-agent-allow-downgrade = tostring(var.allow_downgrade)
    oa-agent-allow-dirty     = tostring(var.allow_dirty_package)
  }
}

# Dedicated identity: logs and metrics at project level; the bucket and the
# secret grant it access on those resources only (their modules).
resource "google_service_account" "vm" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "orchestrator PostgreSQL VM (${var.name})"
}

resource "google_project_iam_member" "vm" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.vm.email}"
}

resource "google_compute_address" "internal" {
  project      = var.project_id
  name         = "${var.name}-ip"
  region       = local.region
  subnetwork   = var.subnetwork
  address_type = "INTERNAL"
  purpose      = "GCE_ENDPOINT"
  address      = var.internal_ip

  lifecycle {
    # The seed pinned 10.8.0.2: outside its subnet, inside the connector.
    precondition {
      condition = var.internal_ip == null || try(
        cidrhost("${var.internal_ip}/${split("/", var.subnet_cidr)[1]}", 0) == cidrhost(var.subnet_cidr, 0) &&
        !contains([cidrhost(var.subnet_cidr, 0), cidrhost(var.subnet_cidr, 1), cidrhost(var.subnet_cidr, -2), cidrhost(var.subnet_cidr, -1)], var.internal_ip),
        false
      )
      error_message = "internal_ip ${coalesce(var.internal_ip, "-")} is not a usable address of subnet ${var.subnet_cidr} (the first two and last two are reserved)."
    }
    precondition {
      condition     = var.internal_ip == null || try(cidrhost("${var.internal_ip}/28", 0) != cidrhost(var.connector_cidr, 0), false)
      error_message = "internal_ip ${coalesce(var.internal_ip, "-")} lies inside the connector range ${var.connector_cidr}."
    }
  }
}

# PostgreSQL's data lives here, not on the boot disk: replacing the VM (new
# image, machine type, cloud-init) keeps the database.
resource "google_compute_disk" "data" {
  project = var.project_id
  name    = "${var.name}-data"
  zone    = var.zone
  type    = var.disk_type
  size    = var.data_disk_size_gb
  labels  = var.labels

  lifecycle {
    # Literal by necessity (lifecycle takes no variables). To really delete
    # the database: terraform state rm this disk, then delete it by hand.
    prevent_destroy = true
  }
}

# Orders the instance after the Cloud NAT (cloud-init installs packages at
# first boot and has no public IP): depends_on takes resources, not
# variables, so the NAT's ID passes through this.  Only the instance waits;
# the service account must not, since the network's firewall rules take its
# email (a cycle otherwise).
resource "terraform_data" "nat" {
  input = var.nat_id
}

resource "google_compute_instance" "this" {
  project      = var.project_id
  name         = var.name
  zone         = var.zone
  machine_type = var.machine_type
  labels       = var.labels

  allow_stopping_for_update = true
  deletion_protection       = var.deletion_protection

  boot_disk {
    auto_delete = true

    initialize_params {
      image  = var.image
      size   = var.boot_disk_size_gb
      type   = var.disk_type
      labels = var.labels
    }
  }

  attached_disk {
    source      = google_compute_disk.data.id
    device_name = var.data_device_name
    mode        = "READ_WRITE"
  }

  # No access_config block: no external IP.  Package mirrors are reached
  # through Cloud NAT, Google APIs through Private Google Access.
  network_interface {
    subnetwork = var.subnetwork
    network_ip = google_compute_address.internal.address
  }

  service_account {
    email  = google_service_account.vm.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # metadata is updated in place (no replacement, no reboot): a new package
  # or flag reaches the running VM.  Keep per-deployment values here, never
  # in metadata_startup_script, which forces a new instance.
  metadata = merge(local.oa_attributes, {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    user-data              = file(local.cloud_init_path)
  })

  lifecycle {
    # The installer on the VM refuses such a package; refuse it at plan,
    # before anything is uploaded or changed.
    precondition {
      condition     = var.allow_dirty_package || !strcontains(basename(var.agent_package), "+dirty")
      error_message = "${basename(var.agent_package)} was built from a dirty tree: commit and rebuild (make deb), or set allow_dirty_package = true."
    }
  }

  depends_on = [google_project_iam_member.vm, terraform_data.nat]
}
