terraform {
  # 1.11: the secrets module writes the password with a write-only argument.
  required_version = ">= 1.11"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.23, < 8.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
