variable "project_id" {
  description = "Project that holds the bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "name" {
  description = "Globally unique name of the artifacts bucket (not the backup bucket: the VM writes there)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.name)) && !startswith(var.name, "goog")
    error_message = "name must be 3-63 lowercase letters, digits, hyphens or underscores, must not start with goog."
  }
}

variable "location" {
  description = "Bucket location: the database VM's region keeps the download regional."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.location))
    error_message = "location must be a region, dual-region or multi-region name such as us-central1."
  }
}

variable "agent_package" {
  description = "Local path of the .deb that make deb built, e.g. build/orchestrator-agent_0.1.0+312.gabc123def456_amd64.deb; uploaded as packages/BASENAME, its sha256 computed here."
  type        = string

  validation {
    condition     = endswith(var.agent_package, ".deb") && can(regex("^orchestrator-agent_[0-9][-+.~A-Za-z0-9]*_[a-z0-9]+\\.deb$", basename(var.agent_package)))
    error_message = "agent_package must be the path of an orchestrator-agent_VERSION_ARCH.deb (run make deb; the name is what make deb writes to build/)."
  }
  validation {
    condition     = try(fileexists(var.agent_package), false)
    error_message = "agent_package names no readable file: run make deb first, and give the path relative to the directory terraform runs in."
  }
}

variable "reader_service_account_email" {
  description = "The database VM's service account: granted roles/storage.objectViewer on this bucket and nothing else."
  type        = string

  validation {
    condition     = can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", var.reader_service_account_email))
    error_message = "reader_service_account_email must be a service account email (...@....iam.gserviceaccount.com)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the bucket while it still holds packages (and their old versions)."
  type        = bool
  default     = false

  validation {
    condition     = var.force_destroy != null
    error_message = "force_destroy must be true or false."
  }
}

variable "labels" {
  description = "Labels put on the bucket."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][-_a-z0-9]{0,62}$", k)) && can(regex("^[-_a-z0-9]{0,63}$", v))])
    error_message = "labels must have lowercase keys starting with a letter and lowercase values, at most 63 characters."
  }
}
