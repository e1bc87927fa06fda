// The droplet's first-boot configuration (DigitalOcean `user_data`): a `#cloud-config` document.
// Everything inserted is validated against a strict format and the call throws otherwise: nothing is
// escaped, so nothing can be smuggled into the YAML or the shell.
//
// Who can read the node's secrets (issue 14a). `user_data` carries the node's nsec (SPEC 4.3: Timmy
// hands it to the customer, so it is made here, not on the node) and the one-off Tailscale auth key, and
// DigitalOcean's metadata service (169.254.169.254, IPv4 only) serves `user_data` to any process that
// asks. So the metadata service is made root-only before anything else runs: the firewall below is the
// first `bootcmd` (cloud-init's earliest stage, before any package, container or user service exists),
// and a systemd unit applies it again at every later boot before the network comes up. Non-root local
// processes are refused by owner (filter OUTPUT); forwarded traffic — Docker containers on any bridge,
// whatever user they run as — is dropped before routing (mangle PREROUTING, a chain neither Docker nor
// UFW rewrites). The secrets reach the disk only through `write_files`, root-owned 0600 in a 0700
// directory, never on a command line (visible in `ps`) and never echoed (the logs are not secret).
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

/** Where the node's own files live: root's home, 0700. */
export const NODE_DIR = '/root/.timmy-node';
export const NOSTR_KEY_FILE = `${NODE_DIR}/nostr.key`;
export const TAILSCALE_KEY_FILE = `${NODE_DIR}/tailscale-auth.key`;
export const BOOTSTRAP_SCRIPT = `${NODE_DIR}/bootstrap.sh`;
export const FIREWALL_SCRIPT = '/usr/local/sbin/timmy-metadata-firewall';
export const FIREWALL_UNIT = '/etc/systemd/system/timmy-metadata-firewall.service';
/** DigitalOcean's metadata service; it has no IPv6 address (docs.digitalocean.com, Metadata API). */
export const METADATA_IPV4 = '169.254.169.254';

/**
 * POSIX sh (cloud-init runs bootcmd with /bin/sh), idempotent (it runs at every boot, and again from the
 * bootstrap script after UFW and Docker have touched the tables). Fails loudly when a rule cannot be set.
 */
export const METADATA_FIREWALL = `# Timmy: the metadata service serves user_data, which holds this node's secrets: root only.
set -eu
M=${METADATA_IPV4}
# Local processes: only uid 0 may reach it.
iptables -w -C OUTPUT -d "$M" -m owner ! --uid-owner 0 -j REJECT 2>/dev/null || iptables -w -I OUTPUT 1 -d "$M" -m owner ! --uid-owner 0 -j REJECT
# Forwarded traffic (containers, bridges, VMs) never: dropped before routing, ahead of Docker's and UFW's chains.
iptables -w -t mangle -C PREROUTING -d "$M" -j DROP 2>/dev/null || iptables -w -t mangle -I PREROUTING 1 -d "$M" -j DROP
`;

/** Later boots: the same rules, after UFW has loaded its tables and before any network exists. */
const FIREWALL_UNIT_TEXT = `[Unit]
Description=Timmy: DigitalOcean metadata service (holds this node's secrets) for root only
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service ufw.service
Before=network-pre.target cloud-init.service docker.service
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${FIREWALL_SCRIPT}

[Install]
WantedBy=multi-user.target
`;

const HEADER = `#!/bin/bash
# Timmy node bootstrap: Docker, Tailscale (optional), UFW, Bitcoin Knots. Run once by cloud-init, as root.
# No command tracing anywhere: the output goes to logs that are not secret.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Fresh droplets run unattended-upgrades at boot: wait up to 600 s for the dpkg lock instead of failing.
APT="apt-get -y -q -o DPkg::Lock::Timeout=600"
touch /var/log/timmy-node-bootstrap.log && chmod 600 /var/log/timmy-node-bootstrap.log
exec > >(tee -a /var/log/timmy-node-bootstrap.log) 2>&1
`;

const FIREWALL_SECTION = `
# --- metadata service root-only: again now (bootcmd did it first), and at every boot from now on ---
chmod 700 ${NODE_DIR}
${FIREWALL_SCRIPT}
systemctl daemon-reload
systemctl enable timmy-metadata-firewall.service
`;

// UFW and Docker load their own tables: the rules are put back (idempotently) after each.
const FIREWALL_AGAIN = `${FIREWALL_SCRIPT}
`;

function hostnameSection(hostname: string): string {
  return `
# --- hostname ---
hostnamectl set-hostname ${hostname}
`;
}

const BASE_SECTION = `
# --- base packages ---
$APT update
$APT install ca-certificates curl ufw iptables
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
${FIREWALL_AGAIN}`;

function tailscaleSection(hostname: string): string {
  // The key is read from its 0600 file (tailscale's `file:` form), so it never shows in `ps`; spent or
  // not, it is removed afterwards.
  return `
# --- Tailscale: join the operator's tailnet with a one-off, pre-authorized key ---
curl -fsSL https://tailscale.com/install.sh | sh
trap 'rm -f ${TAILSCALE_KEY_FILE}' EXIT
tailscale up --auth-key=file:${TAILSCALE_KEY_FILE} --hostname=${hostname}
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
${FIREWALL_AGAIN}`;

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

/** The bootstrap script (run by cloud-init's runcmd, after the files exist). No secret is in it. */
function bootstrapScript(args: CloudInitArgs, prune: number, image: string): string {
  return [
    HEADER,
    FIREWALL_SECTION,
    hostnameSection(args.hostname),
    BASE_SECTION,
    UFW_SECTION,
    DOCKER_SECTION,
    knotsSection(image, prune),
    // Last: a Tailscale hiccup must not keep the Bitcoin node from starting.
    args.tailscaleAuthKey !== undefined ? tailscaleSection(args.hostname) : '',
    '\necho "timmy node bootstrap finished"\n',
  ].join('');
}

// --- YAML: every scalar is a JSON string (valid YAML) or a literal block; both need no escaping here ---

/** A `|` literal block whose lines are indented by `indent` spaces; `text` ends with a newline. */
function literal(text: string, indent: number): string {
  if (!text.endsWith('\n') || /\t|\r/.test(text)) throw new CloudInitError('internal: literal blocks end with a newline and hold no tabs');
  const pad = ' '.repeat(indent);
  return `|\n${text.slice(0, -1).split('\n').map((l) => (l.length ? pad + l : '')).join('\n')}\n`;
}

interface WriteFile {
  path: string;
  permissions: string;
  content: string;
}

function writeFilesEntry(f: WriteFile): string {
  return [
    `  - path: ${JSON.stringify(f.path)}`,
    `    owner: "root:root"`,
    `    permissions: ${JSON.stringify(f.permissions)}`,
    `    content: ${literal(f.content, 6)}`,
  ].join('\n');
}

/** The files the node starts with. Secrets: 0600, in NODE_DIR (root's home, made 0700). */
export function nodeFiles(args: CloudInitArgs): WriteFile[] {
  const { prune, image } = checkArgs(args);
  const files: WriteFile[] = [
    { path: FIREWALL_SCRIPT, permissions: '0755', content: `#!/bin/sh\n${METADATA_FIREWALL}` },
    { path: FIREWALL_UNIT, permissions: '0644', content: FIREWALL_UNIT_TEXT },
    { path: NOSTR_KEY_FILE, permissions: '0600', content: `nsec=${args.nodeNsec}\nnpub=${args.nodeNpub}\n` },
  ];
  if (args.tailscaleAuthKey !== undefined) files.push({ path: TAILSCALE_KEY_FILE, permissions: '0600', content: `${args.tailscaleAuthKey}\n` });
  files.push({ path: BOOTSTRAP_SCRIPT, permissions: '0700', content: bootstrapScript(args, prune, image) });
  return files;
}

/**
 * The whole `#cloud-config` document. Order matters: bootcmd (the metadata firewall) runs first, in
 * cloud-init's init stage, before write_files puts the secrets on disk and long before runcmd starts
 * anything else. Throws CloudInitError on any value that is not exactly the expected format.
 */
export function buildCloudInit(args: CloudInitArgs): string {
  const files = nodeFiles(args);
  return [
    '#cloud-config',
    '# Timmy node bootstrap. The metadata service serves this document to whoever asks: the first thing',
    '# that runs makes it root-only.',
    `bootcmd:\n  - ${literal(METADATA_FIREWALL, 4)}`.trimEnd(),
    'write_files:',
    ...files.map(writeFilesEntry).map((e) => e.trimEnd()),
    'runcmd:',
    `  - [${JSON.stringify('bash')}, ${JSON.stringify(BOOTSTRAP_SCRIPT)}]`,
    '',
  ].join('\n');
}
