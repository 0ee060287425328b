terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.23, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.1, < 3.0"
    }
  }
}
