variable "project_id" {
  description = "Project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "agent_package" {
  description = "Path of the .deb make deb built, relative to this directory or absolute, e.g. ../../../build/orchestrator-agent_0.1.0+312.gabc123def456_amd64.deb. Uploaded to the artifacts bucket; the VM installs it after checking its sha256."
  type        = string

  validation {
    condition     = endswith(var.agent_package, ".deb") && can(regex("^orchestrator-agent_[0-9][-+.~A-Za-z0-9]*_[a-z0-9]+\\.deb$", basename(var.agent_package)))
    error_message = "agent_package must be the path of an orchestrator-agent_VERSION_ARCH.deb as make deb writes it to build/."
  }
  validation {
    condition     = try(fileexists(var.agent_package), false)
    error_message = "agent_package names no readable file: run make deb at the repository root first (paths are relative to the directory terraform runs in)."
  }
}

variable "allow_downgrade" {
  description = "Let the VM install an agent_package older than the installed one (a rollback); set back to false afterwards."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_downgrade != null
    error_message = "allow_downgrade must be true or false."
  }
}

variable "allow_dirty_package" {
  description = "Let the VM install a package built from a tree with uncommitted changes (version contains +dirty). Development only."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_dirty_package != null
    error_message = "allow_dirty_package must be true or false."
  }
}

variable "region" {
  description = "Region of Cloud Run, the connector, the subnet and the bucket."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "zone" {
  description = "Zone of the database VM (inside region)."
  type        = string
  default     = "us-central1-a"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.zone))
    error_message = "zone must look like us-central1-a."
  }
}

variable "service_name" {
  description = "Cloud Run service name of the Dependency Orchestrator."
  type        = string
  default     = "architecture-kb-orchestrator"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", var.service_name))
    error_message = "service_name must be at most 49 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cloud_run_image" {
  description = "Container image of the orchestrator (e.g. REGION-docker.pkg.dev/PROJECT/REPO/orchestrator:TAG)."
  type        = string

  validation {
    condition     = length(var.cloud_run_image) > 0 && !can(regex("\\s", var.cloud_run_image))
    error_message = "cloud_run_image must be a container image reference without spaces."
  }
}

variable "invoker_members" {
  description = "Principals given roles/run.invoker on the service (e.g. [\"allUsers\"] for public webhooks); empty keeps it private."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invoker_members : can(regex("^(allUsers|allAuthenticatedUsers|(user|group|serviceAccount|domain):.+)$", m))])
    error_message = "invoker_members entries must be IAM members such as allUsers or serviceAccount:EMAIL."
  }
}

variable "cloud_run_max_instances" {
  description = "Upper bound of Cloud Run instances; each holds database connections, so keep it within PostgreSQL's max_connections."
  type        = number
  default     = 3

  validation {
    condition     = var.cloud_run_max_instances >= 1 && var.cloud_run_max_instances <= 100 && floor(var.cloud_run_max_instances) == var.cloud_run_max_instances
    error_message = "cloud_run_max_instances must be an integer from 1 to 100."
  }
}

variable "connector_name" {
  description = "Serverless VPC Access connector name (at most 25 characters)."
  type        = string
  default     = "orchestrator-connector"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,23}[a-z0-9]$", var.connector_name))
    error_message = "connector_name must match ^[a-z][-a-z0-9]{0,23}[a-z0-9]$ (at most 25 characters)."
  }
}

variable "connector_cidr" {
  description = "The connector's /28, outside subnet_cidr; the only source PostgreSQL admits."
  type        = string
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be an IPv4 /28 such as 10.8.0.0/28."
  }
}

variable "subnet_cidr" {
  description = "Range of the subnet that holds the database VM."
  type        = string
  default     = "10.10.0.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR range."
  }
}

variable "db_internal_ip" {
  description = "Static internal IP of the database VM inside subnet_cidr (POSTGRES_HOST); null lets Google choose one."
  type        = string
  default     = "10.10.0.2"

  validation {
    condition     = var.db_internal_ip == null || can(cidrhost("${var.db_internal_ip}/32", 0))
    error_message = "db_internal_ip must be null or an IPv4 address."
  }
}

variable "machine_type" {
  description = "Machine type of the database VM."
  type        = string
  default     = "e2-micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must be a machine type name such as e2-micro."
  }
}

variable "data_disk_size_gb" {
  description = "Size of the database's persistent data disk in GB."
  type        = number
  default     = 30

  validation {
    condition     = var.data_disk_size_gb >= 10 && floor(var.data_disk_size_gb) == var.data_disk_size_gb
    error_message = "data_disk_size_gb must be an integer of at least 10."
  }
}

variable "workers" {
  description = "Number of agent worker instances on the VM."
  type        = number
  default     = 1

  validation {
    condition     = var.workers >= 1 && var.workers <= 16 && floor(var.workers) == var.workers
    error_message = "workers must be an integer from 1 to 16."
  }
}

variable "bucket_name" {
  description = "Backup bucket name; null means PROJECT-orchestrator-backups."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be null or a valid bucket name."
  }
}

variable "artifacts_bucket_name" {
  description = "Name of the bucket holding the agent's packages; null means PROJECT-orchestrator-artifacts."
  type        = string
  default     = null

  validation {
    condition     = var.artifacts_bucket_name == null || can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.artifacts_bucket_name))
    error_message = "artifacts_bucket_name must be null or a valid bucket name."
  }
}

variable "backup_retention_days" {
  description = "Days after which the bucket deletes backups."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be an integer from 1 to 3650."
  }
}

variable "password_version" {
  description = "Raise by one to rotate the database password (a new random secret version); see docs/operations.md."
  type        = number
  default     = 1

  validation {
    condition     = var.password_version >= 1 && floor(var.password_version) == var.password_version
    error_message = "password_version must be a positive integer."
  }
}

variable "enable_apis" {
  description = "Enable the Google APIs this deployment uses (left enabled on destroy)."
  type        = bool
  default     = true

  validation {
    condition     = var.enable_apis != null
    error_message = "enable_apis must be true or false."
  }
}
