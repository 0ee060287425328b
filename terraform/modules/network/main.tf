locals {
  network_self_link = var.create_network ? google_compute_network.this[0].self_link : data.google_compute_network.existing[0].self_link

  # Two ranges overlap when they agree on the shorter prefix.
  subnet_prefix    = tonumber(split("/", var.subnet_cidr)[1])
  connector_prefix = tonumber(split("/", var.connector_cidr)[1])
  shorter_prefix   = min(local.subnet_prefix, local.connector_prefix)
  ranges_overlap = (
    cidrhost("${cidrhost(var.subnet_cidr, 0)}/${local.shorter_prefix}", 0) ==
    cidrhost("${cidrhost(var.connector_cidr, 0)}/${local.shorter_prefix}", 0)
  )
}

resource "google_compute_network" "this" {
  count = var.create_network ? 1 : 0

  project                 = var.project_id
  name                    = var.network_name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

data "google_compute_network" "existing" {
  count = var.create_network ? 0 : 1

  project = var.project_id
  name    = var.network_name
}

resource "google_compute_subnetwork" "this" {
  project                  = var.project_id
  name                     = var.subnet_name
  region                   = var.region
  network                  = local.network_self_link
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  lifecycle {
    # The seed pinned the VM inside the connector's range; refuse that here.
    precondition {
      condition     = !local.ranges_overlap
      error_message = "subnet_cidr ${var.subnet_cidr} overlaps connector_cidr ${var.connector_cidr}: give the connector its own /28."
    }
  }
}

resource "google_compute_router" "this" {
  count = var.create_nat ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = local.network_self_link
}

resource "google_compute_router_nat" "this" {
  count = var.create_nat ? 1 : 0

  project                            = var.project_id
  name                               = "${var.name_prefix}-nat"
  region                             = var.region
  router                             = google_compute_router.this[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.this.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# PostgreSQL only from the connector's /28 (Cloud Run's egress into the VPC).
resource "google_compute_firewall" "postgres_from_connector" {
  project   = var.project_id
  name      = "${var.name_prefix}-allow-postgres-from-connector"
  network   = local.network_self_link
  direction = "INGRESS"
  priority  = 1000

  source_ranges           = [var.connector_cidr]
  target_service_accounts = [var.db_service_account_email]

  allow {
    protocol = "tcp"
    ports    = [var.db_port]
  }
}

# SSH only through Identity-Aware Proxy TCP forwarding.
resource "google_compute_firewall" "ssh_from_iap" {
  project   = var.project_id
  name      = "${var.name_prefix}-allow-ssh-from-iap"
  network   = local.network_self_link
  direction = "INGRESS"
  priority  = 1000

  source_ranges           = var.iap_ssh_ranges
  target_service_accounts = [var.db_service_account_email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}
