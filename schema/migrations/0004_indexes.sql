DROP INDEX `jobs_state`;--> statement-breakpoint
CREATE INDEX `jobs_client_state` ON `jobs` (`client_address`,`state`);--> statement-breakpoint
CREATE INDEX `jobs_state` ON `jobs` (`state`,`created_at`);--> statement-breakpoint
CREATE INDEX `invoices_status_hash` ON `invoices` (`status`,`payment_hash`);