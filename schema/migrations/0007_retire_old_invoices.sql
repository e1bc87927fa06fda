DROP TABLE `invoices`;--> statement-breakpoint
DROP TABLE `session_invoices`;--> statement-breakpoint
DROP INDEX `bootstrap_jobs_payment_hash_unique`;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` DROP COLUMN `payment_hash`;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` DROP COLUMN `bolt11`;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` DROP COLUMN `invoice_expires_at`;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` DROP COLUMN `paid_at`;