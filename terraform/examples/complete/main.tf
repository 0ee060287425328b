locals {
  db_name     = "orchestrator"
  db_user     = "orchestrator"
  db_port     = 5432
  bucket_name = coalesce(var.bucket_name, "${var.project_id}-orchestrator-backups")
  # Separate from the backups: the VM writes those, and must not be able to
  # write what root installs.
  artifacts_bucket_name = coalesce(var.artifacts_bucket_name, "${var.project_id}-orchestrator-artifacts")
  labels                = { app = "orchestrator" }

  apis = [
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
  ]
}

resource "google_project_service" "this" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "postgres_vm" {
  source = "../../modules/postgres-vm"

  project_id         = var.project_id
  zone               = var.zone
  machine_type       = var.machine_type
  data_disk_size_gb  = var.data_disk_size_gb
  subnetwork         = module.network.subnet_self_link
  subnet_cidr        = module.network.subnet_cidr
  internal_ip        = var.db_internal_ip
  db_name            = local.db_name
  db_user            = local.db_user
  password_secret_id = module.secrets.secret_id
  backup_target      = module.backup_bucket.backup_target
  connector_cidr     = module.vpc_connector.ip_cidr_range
  nat_id             = module.network.nat_id
  workers            = var.workers
  labels             = local.labels

  agent_package       = module.artifacts.package_uri
  agent_sha256        = module.artifacts.package_sha256
  allow_downgrade     = var.allow_downgrade
  allow_dirty_package = var.allow_dirty_package

  depends_on = [google_project_service.this]
}

module "network" {
  source = "../../modules/network"

  project_id               = var.project_id
  region                   = var.region
  subnet_cidr              = var.subnet_cidr
  connector_cidr           = var.connector_cidr
  db_port                  = local.db_port
  db_service_account_email = module.postgres_vm.service_account_email

  depends_on = [google_project_service.this]
}

module "vpc_connector" {
  source = "../../modules/vpc-connector"

  project_id    = var.project_id
  region        = var.region
  name          = var.connector_name
  network_name  = module.network.network_name
  ip_cidr_range = var.connector_cidr

  depends_on = [google_project_service.this]
}

module "secrets" {
  source = "../../modules/secrets"

  project_id       = var.project_id
  password_version = var.password_version
  labels           = local.labels
  accessors = {
    vm        = module.postgres_vm.service_account_email
    cloud_run = google_service_account.run.email
  }

  depends_on = [google_project_service.this]
}

module "backup_bucket" {
  source = "../../modules/backup-bucket"

  project_id                   = var.project_id
  name                         = local.bucket_name
  location                     = var.region
  backup_retention_days        = var.backup_retention_days
  writer_service_account_email = module.postgres_vm.service_account_email
  labels                       = local.labels

  depends_on = [google_project_service.this]
}

# The package the VM installs, read-only for the VM.
module "artifacts" {
  source = "../../modules/artifacts"

  project_id                   = var.project_id
  name                         = local.artifacts_bucket_name
  location                     = var.region
  agent_package                = var.agent_package
  reader_service_account_email = module.postgres_vm.service_account_email
  labels                       = local.labels

  depends_on = [google_project_service.this]
}

resource "google_service_account" "run" {
  project      = var.project_id
  account_id   = "orchestrator-run"
  display_name = "orchestrator Cloud Run service"

  depends_on = [google_project_service.this]
}

resource "google_cloud_run_v2_service" "orchestrator" {
  project             = var.project_id
  name                = var.service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  labels              = local.labels

  template {
    service_account = google_service_account.run.email

    scaling {
      min_instance_count = 0
      max_instance_count = var.cloud_run_max_instances
    }

    # Private ranges (the database VM) go through the connector; everything
    # else (GitHub, Google APIs) leaves directly.
    vpc_access {
      connector = module.vpc_connector.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    containers {
      image = var.cloud_run_image

      env {
        name  = "USE_POSTGRESQL"
        value = "true"
      }
      env {
        name  = "POSTGRES_HOST"
        value = module.postgres_vm.internal_ip
      }
      env {
        name  = "POSTGRES_PORT"
        value = tostring(local.db_port)
      }
      env {
        name  = "POSTGRES_DB"
        value = local.db_name
      }
      env {
        name  = "POSTGRES_USER"
        value = local.db_user
      }
      env {
        name = "POSTGRES_PASSWORD"
        value_source {
          secret_key_ref {
            secret  = module.secrets.secret_short_name
            version = "latest"
          }
        }
      }
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.orchestrator.name
  role     = "roles/run.invoker"
  member   = each.value
}
