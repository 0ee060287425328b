variable "project_id" {
  description = "Project that holds the network."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the subnet, the Cloud Router and Cloud NAT."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "create_network" {
  description = "Create the VPC network; false uses the existing network named network_name (the subnet is still created in it)."
  type        = bool
  default     = true

  validation {
    condition     = var.create_network != null
    error_message = "create_network must be true or false."
  }
}

variable "network_name" {
  description = "Name of the VPC network to create, or of the existing one when create_network is false."
  type        = string
  default     = "orchestrator-vpc"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.network_name))
    error_message = "network_name must be a valid Compute Engine resource name (RFC 1035, at most 63 characters)."
  }
}

variable "subnet_name" {
  description = "Name of the subnet that holds the database VM."
  type        = string
  default     = "orchestrator-subnet"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.subnet_name))
    error_message = "subnet_name must be a valid Compute Engine resource name (RFC 1035, at most 63 characters)."
  }
}

variable "subnet_cidr" {
  description = "Primary IPv4 range of the subnet (must not overlap connector_cidr)."
  type        = string
  default     = "10.10.0.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && cidrhost(var.subnet_cidr, 0) == split("/", var.subnet_cidr)[0] && tonumber(split("/", var.subnet_cidr)[1]) <= 29
    error_message = "subnet_cidr must be an IPv4 network address with a prefix of /29 or shorter, e.g. 10.10.0.0/24."
  }
}

variable "connector_cidr" {
  description = "The Serverless VPC Access connector's /28: the only source allowed to reach PostgreSQL."
  type        = string
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28") && cidrhost(var.connector_cidr, 0) == split("/", var.connector_cidr)[0]
    error_message = "connector_cidr must be an IPv4 /28 network address, e.g. 10.8.0.0/28."
  }
}

variable "db_service_account_email" {
  description = "Service account of the database VM: the firewall rules target it instead of network tags."
  type        = string

  validation {
    condition     = can(regex("^[^@]+@[^@]+\\.iam\\.gserviceaccount\\.com$", var.db_service_account_email))
    error_message = "db_service_account_email must be a service account email (...@....iam.gserviceaccount.com)."
  }
}

variable "db_port" {
  description = "TCP port PostgreSQL listens on."
  type        = number
  default     = 5432

  validation {
    condition     = var.db_port >= 1 && var.db_port <= 65535 && floor(var.db_port) == var.db_port
    error_message = "db_port must be an integer between 1 and 65535."
  }
}

variable "iap_ssh_ranges" {
  description = "Sources allowed to SSH (22) to the database VM: Identity-Aware Proxy's TCP forwarding range only, by default."
  type        = list(string)
  default     = ["35.235.240.0/20"]

  validation {
    condition     = length(var.iap_ssh_ranges) > 0 && alltrue([for r in var.iap_ssh_ranges : can(cidrhost(r, 0)) && !startswith(r, "0.0.0.0/")])
    error_message = "iap_ssh_ranges must be a non-empty list of IPv4 CIDR ranges, none of them 0.0.0.0/N."
  }
}

variable "create_nat" {
  description = "Create a Cloud Router and Cloud NAT so VMs without public IPs reach package mirrors; false if the network already has NAT in this region."
  type        = bool
  default     = true

  validation {
    condition     = var.create_nat != null
    error_message = "create_nat must be true or false."
  }
}

variable "name_prefix" {
  description = "Prefix for the router, NAT and firewall rule names."
  type        = string
  default     = "orchestrator"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,39}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and have at most 40 lowercase letters, digits or hyphens."
  }
}
