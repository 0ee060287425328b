locals {
  package_file = basename(var.agent_package)
  # A version is a new object name, so a rollback target stays in the
  # bucket under its own name until Terraform replaces it (see README).
  package_object = "packages/${local.package_file}"
  # Computed from the local file at plan: the VM installs the package only
  # if the download has this digest, and a changed digest changes the
  # VM's metadata, which its watcher acts on.
  package_sha256 = filesha256(var.agent_package)
}

# Its own bucket, not a prefix of the backup bucket: the VM writes there,
# and here it may only read.  Whoever can write this bucket chooses what
# root installs on the VM.
resource "google_storage_bucket" "this" {
  project                     = var.project_id
  name                        = var.name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  # A replaced or deleted package stays as a noncurrent version (no
  # lifecycle rule deletes it): the way back to a package no longer built.
  versioning {
    enabled = true
  }
}

# Read only: objectViewer has storage.objects.get/list and nothing that
# writes.  No other principal is granted anything here; the deployer
# uploads with its own project-level rights.
resource "google_storage_bucket_iam_member" "reader" {
  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.reader_service_account_email}"
}

# A rebuild under the same name (same version, new bytes) must replace the
# object; the provider's own detection of a changed local source has
# varied between versions, the digest does not.
resource "terraform_data" "package_sha256" {
  input = local.package_sha256
}

resource "google_storage_bucket_object" "agent_package" {
  bucket       = google_storage_bucket.this.name
  name         = local.package_object
  source       = var.agent_package
  content_type = "application/vnd.debian.binary-package"
  # For whoever inspects the bucket by hand; the VM trusts only the digest
  # in its own metadata.
  metadata = {
    sha256 = local.package_sha256
  }

  lifecycle {
    replace_triggered_by = [terraform_data.package_sha256]
  }
}
