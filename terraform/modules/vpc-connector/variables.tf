variable "project_id" {
  description = "Project that holds the connector."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the connector; the same as the Cloud Run service's."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "name" {
  description = "Connector name: 2-25 characters, lowercase letters, digits and hyphens, starting with a letter (the API's limit; the seed's 30-character name failed)."
  type        = string
  default     = "orchestrator-connector"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,23}[a-z0-9]$", var.name))
    error_message = "name must match ^[a-z][-a-z0-9]{0,23}[a-z0-9]$ (at most 25 characters)."
  }
}

variable "network_name" {
  description = "Name of the VPC network the connector attaches to."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.network_name))
    error_message = "network_name must be a valid Compute Engine resource name."
  }
}

variable "ip_cidr_range" {
  description = "The connector's own /28; must not overlap any subnet of the network. The database firewall admits exactly this range."
  type        = string
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.ip_cidr_range, 0)) && endswith(var.ip_cidr_range, "/28") && cidrhost(var.ip_cidr_range, 0) == split("/", var.ip_cidr_range)[0]
    error_message = "ip_cidr_range must be an IPv4 /28 network address, e.g. 10.8.0.0/28."
  }
}

variable "machine_type" {
  description = "Machine type of the connector instances."
  type        = string
  default     = "e2-micro"

  validation {
    condition     = contains(["f1-micro", "e2-micro", "e2-standard-4"], var.machine_type)
    error_message = "machine_type must be f1-micro, e2-micro or e2-standard-4."
  }
}

variable "min_instances" {
  description = "Minimum number of connector instances (2 is the API's minimum)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_instances >= 2 && var.min_instances <= 9 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be an integer from 2 to 9."
  }
}

variable "max_instances" {
  description = "Maximum number of connector instances (3 to 10, greater than min_instances)."
  type        = number
  default     = 3

  validation {
    condition     = var.max_instances >= 3 && var.max_instances <= 10 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be an integer from 3 to 10."
  }
}
