// The droplet's first-boot script (DigitalOcean `user_data`; cloud-init runs a `#!` script once, as
// root, on first boot). Everything inserted is validated against a strict format and the call throws
// otherwise: nothing is escaped, so nothing can be smuggled into the shell.
import { nip19 } from 'nostr-tools';

export interface CloudInitArgs {
  nodeNsec: string;
  nodeNpub: string;
  /** One-off Tailscale auth key; without it Tailscale is not installed. */
  tailscaleAuthKey?: string;
  /** Machine name (also the Tailscale hostname): [a-z0-9-], at most 63 characters. */
  hostname: string;
  /** Bitcoin prune target, MiB; 550 (the minimum bitcoind accepts) by default, 0 keeps the whole chain. */
  prune?: number;
  /** Bitcoin Knots image; pinned by default so a node never jumps a major version on its own. */
  knotsImage?: string;
}

/** bitcoinknots/bitcoin: Knots release binaries (signatures checked at image build), a drop-in for bitcoin/bitcoin. */
export const DEFAULT_KNOTS_IMAGE = 'bitcoinknots/bitcoin:28.1';
export const DEFAULT_PRUNE_MIB = 550;
const MIN_AUTO_PRUNE_MIB = 550; // bitcoind: 0 = off, 1 = manual, >= 550 = automatic target
const NODE_DIR = '/root/.timmy-node';

export class CloudInitError extends Error {
  override name = 'CloudInitError';
}

const BECH32_DATA = '[02-9ac-hj-np-z]{58}'; // 32 bytes + checksum, bech32 alphabet
const HOSTNAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TS_AUTH_KEY = /^tskey-[A-Za-z0-9-]{8,200}$/; // tskey-auth-<id>CNTRL-<secret>
const IMAGE = /^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[A-Za-z0-9_.-]{1,128})?(?:@sha256:[0-9a-f]{64})?$/;

function checkNostrKeys(nsec: string, npub: string): void {
  if (!new RegExp(`^nsec1${BECH32_DATA}$`).test(nsec)) throw new CloudInitError('nodeNsec is not an nsec');
  if (!new RegExp(`^npub1${BECH32_DATA}$`).test(npub)) throw new CloudInitError('nodeNpub is not an npub');
  try {
    // The checksums must hold too: a typo'd key on the node would be worse than no key.
    if (nip19.decode(nsec).type !== 'nsec' || nip19.decode(npub).type !== 'npub') throw new Error('type');
  } catch {
    throw new CloudInitError('nodeNsec/nodeNpub do not decode');
  }
}

function checkArgs(a: CloudInitArgs): { prune: number; image: string } {
  checkNostrKeys(a.nodeNsec, a.nodeNpub);
  if (!HOSTNAME.test(a.hostname)) throw new CloudInitError('hostname must be 1-63 characters of [a-z0-9-]');
  if (a.tailscaleAuthKey !== undefined && !TS_AUTH_KEY.test(a.tailscaleAuthKey)) {
    throw new CloudInitError('tailscaleAuthKey is not a Tailscale auth key (tskey-...)');
  }
  const prune = a.prune ?? DEFAULT_PRUNE_MIB;
  if (!Number.isSafeInteger(prune) || (prune !== 0 && prune < MIN_AUTO_PRUNE_MIB)) {
    throw new CloudInitError(`prune must be 0 or an integer >= ${MIN_AUTO_PRUNE_MIB} (MiB)`);
  }
  const image = a.knotsImage ?? DEFAULT_KNOTS_IMAGE;
  if (!IMAGE.test(image)) throw new CloudInitError('knotsImage is not a docker image reference');
  return { prune, image };
}

const HEADER = `#!/bin/bash
# Timmy node bootstrap: Docker, Tailscale (optional), UFW, Bitcoin Knots. Runs once, as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Fresh droplets run unattended-upgrades at boot: wait up to 600 s for the dpkg lock instead of failing.
APT="apt-get -y -q -o DPkg::Lock::Timeout=600"
exec > >(tee -a /var/log/timmy-node-bootstrap.log) 2>&1
`;

function hostnameSection(hostname: string): string {
  return `
# --- hostname ---
hostnamectl set-hostname ${hostname}
`;
}

function nostrKeySection(nsec: string, npub: string): string {
  // Quoted heredoc delimiter: the body is taken literally (no expansion), and umask keeps it private
  // from the moment it exists.
  return `
# --- the node's Nostr identity (root only) ---
install -d -m 700 ${NODE_DIR}
(
  umask 077
  cat > ${NODE_DIR}/nostr.key <<'TIMMY_NODE_NOSTR_KEY'
nsec=${nsec}
npub=${npub}
TIMMY_NODE_NOSTR_KEY
)
chmod 600 ${NODE_DIR}/nostr.key
`;
}

const BASE_SECTION = `
# --- base packages ---
$APT update
$APT install ca-certificates curl ufw
`;

const DOCKER_SECTION = `
# --- Docker Engine + compose plugin, from Docker's apt repository ---
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
chmod a+r /etc/apt/keyrings/docker.asc
CODENAME="$(. /etc/os-release && echo "\${UBUNTU_CODENAME:-\$VERSION_CODENAME}")"
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu \${CODENAME} stable" > /etc/apt/sources.list.d/docker.list
$APT update
$APT install docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
systemctl enable --now docker
`;

function tailscaleSection(authKey: string, hostname: string): string {
  return `
# --- Tailscale: join the operator's tailnet with a one-off, pre-authorized key ---
curl -fsSL https://tailscale.com/install.sh | sh
tailscale up --authkey=${authKey} --hostname=${hostname}
`;
}

// Docker publishes ports through its own iptables chains, ahead of UFW: 8333 is published on purpose
// and nothing else is, so UFW's policy and the published set agree.
const UFW_SECTION = `
# --- firewall: SSH and Bitcoin P2P only ---
ufw default deny incoming
ufw default allow outgoing
ufw allow 22/tcp
ufw allow 8333/tcp
ufw --force enable
`;

function knotsSection(image: string, prune: number): string {
  return `
# --- Bitcoin Knots (pruned: -prune is a target in MiB), data in a named volume ---
install -d -m 755 /opt/bitcoin-knots
cat > /opt/bitcoin-knots/compose.yaml <<'TIMMY_NODE_COMPOSE'
services:
  bitcoind:
    image: ${image}
    command:
      - -printtoconsole
      - -prune=${prune}
    ports:
      - "8333:8333"
    volumes:
      - bitcoin-data:/home/bitcoin/.bitcoin
    restart: unless-stopped
    stop_grace_period: 2m
volumes:
  bitcoin-data:
TIMMY_NODE_COMPOSE
docker compose -f /opt/bitcoin-knots/compose.yaml up -d
`;
}

/** The whole first-boot script. Throws CloudInitError on any value that is not exactly the expected format. */
export function buildCloudInit(args: CloudInitArgs): string {
  const { prune, image } = checkArgs(args);
  return [
    HEADER,
    hostnameSection(args.hostname),
    // Secrets first: written before anything downloads, so a failed install still leaves the identity.
    nostrKeySection(args.nodeNsec, args.nodeNpub),
    BASE_SECTION,
    UFW_SECTION,
    DOCKER_SECTION,
    knotsSection(image, prune),
    // Last: a Tailscale hiccup must not keep the Bitcoin node from starting.
    args.tailscaleAuthKey !== undefined ? tailscaleSection(args.tailscaleAuthKey, args.hostname) : '',
    '\necho "timmy node bootstrap finished"\n',
  ].join('');
}
