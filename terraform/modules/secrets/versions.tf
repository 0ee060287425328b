terraform {
  # Write-only arguments (secret_data_wo) need Terraform 1.11, ephemeral
  # resources 1.10: the password never enters plan or state.
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
