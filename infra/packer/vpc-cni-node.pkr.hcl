# A worker-node AMI with vpc-cni baked in: the EKS-optimized Amazon Linux 2023 AMI plus
# infra/ami/install.sh (plugin, runtime, calculator, bootstrap hook, ipamd unit, and the nodeadm
# drop-in unit that gives the kubelet this instance's max pods at boot).
#
# IMDS hop limit: launch nodes from this AMI with HttpPutResponseHopLimit=1 (launch template
# MetadataOptions). The AL2023 AMIs' "imds-support v2.0" defaults new instances to 2, which lets
# pods one hop behind the node take IMDS tokens; ipamd runs in the host network and needs only 1.
# An AMI cannot carry 1 itself (docs/operations.md, "Worker-node AMIs").
#
#   bash infra/ami/bundle.sh vpc-cni-bundle.tar.gz   # after npm run build
#   packer build -var bundle=vpc-cni-bundle.tar.gz infra/packer/vpc-cni-node.pkr.hcl

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "kubernetes_version" {
  type    = string
  default = "1.33"
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64; pick a builder instance_type of the same architecture"
}

variable "instance_type" {
  type    = string
  default = "m5.large"
}

variable "source_ami_owner" {
  type        = string
  default     = "602401143452"
  description = "The account that publishes the EKS-optimized AMIs in most regions"
}

variable "bundle" {
  type        = string
  default     = "vpc-cni-bundle.tar.gz"
  description = "Tarball from infra/ami/bundle.sh: dist/ and infra/ami/"
}

variable "enable_ipamd_service" {
  type        = bool
  default     = false
  description = "Run ipamd as a systemd service (nodes without the aws-node DaemonSet)"
}

locals {
  timestamp   = formatdate("YYYYMMDDhhmmss", timestamp())
  enable_flag = var.enable_ipamd_service ? "--enable-ipamd-service" : ""
}

source "amazon-ebs" "node" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ec2-user"
  ami_name      = "vpc-cni-node-${var.kubernetes_version}-${var.arch}-${local.timestamp}"

  source_ami_filter {
    filters = {
      name                = "amazon-eks-node-al2023-${var.arch}-standard-${var.kubernetes_version}-v*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }

  tags = {
    Name               = "vpc-cni-node-${var.kubernetes_version}-${var.arch}"
    kubernetes-version = var.kubernetes_version
    built-by           = "vpc-cni packer template"
  }
}

build {
  sources = ["source.amazon-ebs.node"]

  provisioner "file" {
    source      = var.bundle
    destination = "/tmp/vpc-cni-bundle.tar.gz"
  }

  provisioner "shell" {
    inline = [
      "set -eu",
      "sudo dnf install -y nodejs20",
      "mkdir -p /tmp/vpc-cni && tar -xzf /tmp/vpc-cni-bundle.tar.gz -C /tmp/vpc-cni",
      # --enable-nodeadm-dropin: at each boot vpc-cni-nodeadm.service writes the instance's maxPods (and
      # the expression nodeadm sizes kubeReserved from) to /etc/eks/nodeadm.d/20-vpc-cni.yaml.
      "sudo /tmp/vpc-cni/infra/ami/install.sh --dist /tmp/vpc-cni/dist --node \"$(command -v node-20 || command -v node)\" --enable-nodeadm-dropin ${local.enable_flag}",
      "/usr/local/bin/max-pods --instance-type ${var.instance_type} --cni-version 1.19.0",
      "rm -rf /tmp/vpc-cni /tmp/vpc-cni-bundle.tar.gz",
    ]
  }
}
