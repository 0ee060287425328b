variable "project_id" {
  description = "Project that holds the bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.name)) && !startswith(var.name, "goog")
    error_message = "name must be 3-63 lowercase letters, digits, hyphens or underscores, must not start with goog."
  }
}

variable "location" {
  description = "Bucket location: the database VM's region keeps traffic regional."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.location))
    error_message = "location must be a region, dual-region or multi-region name such as us-central1."
  }
}

variable "backup_prefix" {
  description = "Object prefix the agent writes backups under (the VM's oa-backup-target is gs://BUCKET/PREFIX)."
  type        = string
  default     = "backups"

  validation {
    condition     = can(regex("^[A-Za-z0-9][-_.A-Za-z0-9/]*[A-Za-z0-9]$", var.backup_prefix)) && !can(regex("//", var.backup_prefix))
    error_message = "backup_prefix must be a relative object prefix without leading, trailing or doubled slashes."
  }
}

variable "backup_retention_days" {
  description = "Objects under backup_prefix older than this many days are deleted by the bucket's lifecycle rule (a floor under the agent's own pruning)."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be an integer from 1 to 3650."
  }
}

variable "noncurrent_retention_days" {
  description = "Days a deleted or overwritten object's noncurrent version is kept (versioning is the undo for pruning mistakes)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_retention_days >= 1 && var.noncurrent_retention_days <= 365 && floor(var.noncurrent_retention_days) == var.noncurrent_retention_days
    error_message = "noncurrent_retention_days must be an integer from 1 to 365."
  }
}

variable "writer_service_account_email" {
  description = "The database VM's service account: the only principal this module grants object access to."
  type        = string

  validation {
    condition     = can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", var.writer_service_account_email))
    error_message = "writer_service_account_email must be a service account email (...@....iam.gserviceaccount.com)."
  }
}

variable "allow_delete" {
  description = "Also grant roles/storage.objectUser (adds storage.objects.delete) so the agent can prune old backups; false leaves pruning to the lifecycle rule."
  type        = bool
  default     = true

  validation {
    condition     = var.allow_delete != null
    error_message = "allow_delete must be true or false."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds backups. Keep false outside throwaway projects."
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
