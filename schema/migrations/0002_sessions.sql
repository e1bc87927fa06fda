CREATE TABLE `session_invoices` (
	`payment_hash` text PRIMARY KEY NOT NULL,
	`session_id` text NOT NULL,
	`purpose` text NOT NULL,
	`amount_msats` integer NOT NULL,
	`bolt11` text NOT NULL,
	`status` text NOT NULL,
	`expires_at` integer NOT NULL,
	`paid_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `session_invoices_session` ON `session_invoices` (`session_id`);--> statement-breakpoint
CREATE INDEX `session_invoices_status` ON `session_invoices` (`status`,`expires_at`);--> statement-breakpoint
CREATE TABLE `session_ledger` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`session_id` text NOT NULL,
	`kind` text NOT NULL,
	`amount_msats` integer NOT NULL,
	`job_id` text,
	`payment_hash` text,
	`ref` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `session_ledger_ref_unique` ON `session_ledger` (`ref`);--> statement-breakpoint
CREATE INDEX `session_ledger_session` ON `session_ledger` (`session_id`);--> statement-breakpoint
CREATE INDEX `session_ledger_job` ON `session_ledger` (`job_id`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`pubkey` text,
	`client_address` text,
	`origin` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `sessions_state` ON `sessions` (`state`);--> statement-breakpoint
CREATE INDEX `sessions_client` ON `sessions` (`client_address`,`state`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `session_id` text;