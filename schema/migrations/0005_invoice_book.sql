CREATE TABLE `counters` (
	`name` text PRIMARY KEY NOT NULL,
	`value` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `invoice_book` (
	`payment_hash` text PRIMARY KEY NOT NULL,
	`subject_kind` text NOT NULL,
	`subject_id` text NOT NULL,
	`purpose` text NOT NULL,
	`account` text NOT NULL,
	`amount_msats` integer NOT NULL,
	`bolt11` text NOT NULL,
	`status` text NOT NULL,
	`expires_at` integer NOT NULL,
	`paid_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `invoice_book_status_expiry` ON `invoice_book` (`status`,`expires_at`);--> statement-breakpoint
CREATE INDEX `invoice_book_status_hash` ON `invoice_book` (`status`,`payment_hash`);--> statement-breakpoint
CREATE INDEX `invoice_book_subject` ON `invoice_book` (`subject_kind`,`subject_id`);--> statement-breakpoint
CREATE INDEX `bootstrap_customer_state` ON `bootstrap_jobs` (`customer_pubkey`,`state`);--> statement-breakpoint
CREATE INDEX `bootstrap_client_state` ON `bootstrap_jobs` (`client_address`,`state`);