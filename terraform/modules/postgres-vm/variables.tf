variable "project_id" {
  description = "Project that holds the VM."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "zone" {
  description = "Zone of the VM and its data disk."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.zone))
    error_message = "zone must look like us-central1-a."
  }
}

variable "name" {
  description = "Name of the VM; the data disk is NAME-data."
  type        = string
  default     = "orchestrator-postgres-vm"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,56}[a-z0-9])?$", var.name))
    error_message = "name must be a lowercase RFC 1035 name of at most 58 characters (room for the -data suffix)."
  }
}

variable "machine_type" {
  description = "Machine type; e2-micro (1 GB) is free-tier eligible and what the bootstrap sizes PostgreSQL for by default."
  type        = string
  default     = "e2-micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must be a machine type name such as e2-micro or e2-small."
  }
}

variable "image" {
  description = "Boot image; it must run cloud-init (Ubuntu LTS images do, Debian's GCE images do not)."
  type        = string
  default     = "ubuntu-os-cloud/ubuntu-2404-lts-amd64"

  validation {
    condition     = length(var.image) > 0 && !can(regex("debian-cloud|^debian-", var.image))
    error_message = "image must run cloud-init (e.g. ubuntu-os-cloud/ubuntu-2404-lts-amd64): Debian's GCE images do not, and the VM is provisioned by cloud-init."
  }
}

variable "boot_disk_size_gb" {
  description = "Boot disk size in GB (OS and packages)."
  type        = number
  default     = 20

  validation {
    condition     = var.boot_disk_size_gb >= 10 && var.boot_disk_size_gb <= 2000 && floor(var.boot_disk_size_gb) == var.boot_disk_size_gb
    error_message = "boot_disk_size_gb must be an integer from 10 to 2000."
  }
}

variable "data_disk_size_gb" {
  description = "Size in GB of the persistent data disk that holds PostgreSQL's data directory; it can grow in place, never shrink."
  type        = number
  default     = 30

  validation {
    condition     = var.data_disk_size_gb >= 10 && var.data_disk_size_gb <= 65536 && floor(var.data_disk_size_gb) == var.data_disk_size_gb
    error_message = "data_disk_size_gb must be an integer from 10 to 65536."
  }
}

variable "disk_type" {
  description = "Persistent disk type of the boot and data disks."
  type        = string
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd"], var.disk_type)
    error_message = "disk_type must be pd-standard, pd-balanced or pd-ssd."
  }
}

variable "data_device_name" {
  description = "Device name of the data disk: the bootstrap finds it at /dev/disk/by-id/google-NAME (oa-data-device)."
  type        = string
  default     = "pgdata"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,61}[a-z0-9]$", var.data_device_name))
    error_message = "data_device_name must be 2-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "subnetwork" {
  description = "Self link or ID of the subnet the VM's only network interface joins."
  type        = string

  validation {
    condition     = can(regex("subnetworks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.subnetwork))
    error_message = "subnetwork must be a subnet self link or ID ending in subnetworks/NAME."
  }
}

variable "subnet_cidr" {
  description = "Primary range of subnetwork, to check internal_ip against."
  type        = string

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR range such as 10.10.0.0/24."
  }
}

variable "internal_ip" {
  description = "Static internal IP reserved for the VM (POSTGRES_HOST); null lets Google pick a free address in the subnet, which is then reserved."
  type        = string
  default     = null

  validation {
    condition     = var.internal_ip == null || can(cidrhost("${var.internal_ip}/32", 0))
    error_message = "internal_ip must be null or an IPv4 address."
  }
}

variable "service_account_id" {
  description = "Account ID of the VM's dedicated service account."
  type        = string
  default     = "orchestrator-postgres-vm"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.service_account_id))
    error_message = "service_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cloud_init_path" {
  description = "Path of the static #cloud-config passed as user-data; null means provision/cloud-init.yaml of this repository."
  type        = string
  default     = null

  validation {
    condition     = var.cloud_init_path == null || try(length(var.cloud_init_path) > 0, false)
    error_message = "cloud_init_path must be null or a non-empty path."
  }
}

variable "db_name" {
  description = "Database the bootstrap creates (oa-db-name)."
  type        = string
  default     = "orchestrator"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lowercase PostgreSQL identifier of at most 63 characters."
  }
}

variable "db_user" {
  description = "Login role the bootstrap creates (oa-db-user)."
  type        = string
  default     = "orchestrator"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_user)) && !startswith(var.db_user, "pg_")
    error_message = "db_user must be a lowercase PostgreSQL identifier of at most 63 characters, not starting with pg_."
  }
}

variable "password_secret_id" {
  description = "Full name projects/P/secrets/S of the password secret (oa-password-secret); the bootstrap reads version latest. Never the password itself."
  type        = string

  validation {
    condition     = can(regex("^projects/[^/]+/secrets/[A-Za-z0-9_-]+$", var.password_secret_id))
    error_message = "password_secret_id must be projects/PROJECT/secrets/SECRET."
  }
}

variable "backup_target" {
  description = "Backup destination gs://BUCKET/PREFIX (oa-backup-target)."
  type        = string

  validation {
    condition     = can(regex("^gs://[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9](/[^/]+)*$", var.backup_target))
    error_message = "backup_target must be gs://BUCKET or gs://BUCKET/PREFIX."
  }
}

variable "agent_package" {
  description = "gs://BUCKET/OBJECT of the orchestrator-agent .deb the VM installs (oa-agent-package): the artifacts module's package_uri, in a bucket the VM may only read."
  type        = string

  validation {
    condition     = can(regex("^gs://[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9]/(.+/)?orchestrator-agent_[0-9][-+.~A-Za-z0-9]*_[a-z0-9]+\\.deb$", var.agent_package))
    error_message = "agent_package must be gs://BUCKET/PATH/orchestrator-agent_VERSION_ARCH.deb."
  }
}

variable "agent_sha256" {
  description = "Lowercase hex SHA-256 of that .deb (oa-agent-sha256): the VM installs only a download with this digest, and a new digest is what makes its watcher upgrade."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_sha256))
    error_message = "agent_sha256 must be 64 lowercase hex digits (filesha256 of the .deb)."
  }
}

variable "allow_downgrade" {
  description = "Let the VM install a package older than the one installed (oa-agent-allow-downgrade): set it for a rollback, then back to false."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_downgrade != null
    error_message = "allow_downgrade must be true or false."
  }
}

variable "allow_dirty_package" {
  description = "Let the VM install a package built from a tree with uncommitted changes, whose version contains +dirty (oa-agent-allow-dirty). For development only."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_dirty_package != null
    error_message = "allow_dirty_package must be true or false."
  }
}

variable "connector_cidr" {
  description = "The VPC connector's /28, the only range pg_hba admits (oa-connector-cidr)."
  type        = string

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be an IPv4 /28 such as 10.8.0.0/28."
  }
}

variable "nat_id" {
  description = "ID of the Cloud NAT the VM's first boot reaches package mirrors through (the network module's nat_id); only waited for, never used as a value. null when the network brings its own NAT."
  type        = string
  default     = null

  validation {
    condition     = var.nat_id == null || try(length(var.nat_id) > 0, false)
    error_message = "nat_id must be null or the NAT's ID."
  }
}

variable "workers" {
  description = "Number of orchestrator-agent-worker@N instances the bootstrap enables (oa-workers)."
  type        = number
  default     = 1

  validation {
    condition     = var.workers >= 1 && var.workers <= 16 && floor(var.workers) == var.workers
    error_message = "workers must be an integer from 1 to 16."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the VM through the API. The data disk is protected separately (prevent_destroy)."
  type        = bool
  default     = false

  validation {
    condition     = var.deletion_protection != null
    error_message = "deletion_protection must be true or false."
  }
}

variable "labels" {
  description = "Labels put on the VM and its disks."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][-_a-z0-9]{0,62}$", k)) && can(regex("^[-_a-z0-9]{0,63}$", v))])
    error_message = "labels must have lowercase keys starting with a letter and lowercase values, at most 63 characters."
  }
}
