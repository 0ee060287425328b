variable "project_id" {
  description = "Project that holds the secret."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "secret_id" {
  description = "Secret Manager secret ID for the database password."
  type        = string
  default     = "orchestrator-postgres-password"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.secret_id))
    error_message = "secret_id must be 1-255 letters, digits, underscores or hyphens."
  }
}

variable "password_length" {
  description = "Length of the generated database password."
  type        = number
  default     = 32

  validation {
    condition     = var.password_length >= 20 && var.password_length <= 128 && floor(var.password_length) == var.password_length
    error_message = "password_length must be an integer from 20 to 128."
  }
}

variable "password_version" {
  description = "Generation of the password: raise it by one to write a fresh random password as a new secret version (rotation); the value itself is never stored in state."
  type        = number
  default     = 1

  validation {
    condition     = var.password_version >= 1 && floor(var.password_version) == var.password_version
    error_message = "password_version must be a positive integer."
  }
}

variable "accessors" {
  description = "Service accounts granted roles/secretmanager.secretAccessor on this secret only, keyed by a static label (e.g. { vm = ..., cloud_run = ... }) so for_each keys are known at plan time."
  type        = map(string)

  validation {
    condition     = alltrue([for e in values(var.accessors) : can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "every accessor must be a service account email (...@....iam.gserviceaccount.com)."
  }
}

variable "labels" {
  description = "Labels put on the secret."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][-_a-z0-9]{0,62}$", k)) && can(regex("^[-_a-z0-9]{0,63}$", v))])
    error_message = "labels must have lowercase keys starting with a letter and lowercase values, at most 63 characters."
  }
}
