CREATE TABLE `bootstrap_jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`source` text NOT NULL,
	`state` text NOT NULL,
	`customer_pubkey` text,
	`client_address` text,
	`request_json` text,
	`relays_json` text DEFAULT '[]' NOT NULL,
	`size` text NOT NULL,
	`region` text NOT NULL,
	`customer_ssh_key` text,
	`amount_msats` integer NOT NULL,
	`payment_hash` text NOT NULL,
	`bolt11` text NOT NULL,
	`invoice_expires_at` integer NOT NULL,
	`paid_at` integer,
	`claim_token_hash` text,
	`secrets_enc` text,
	`node_npub` text,
	`ssh_public_key` text,
	`ip` text,
	`tailscale_hostname` text,
	`ssh_user` text,
	`droplet_id` text,
	`progress` text,
	`error_message` text,
	`ready_at` integer,
	`erased_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `bootstrap_jobs_payment_hash_unique` ON `bootstrap_jobs` (`payment_hash`);--> statement-breakpoint
CREATE INDEX `bootstrap_state` ON `bootstrap_jobs` (`state`);