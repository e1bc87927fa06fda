DROP INDEX `invoice_book_status_expiry`;--> statement-breakpoint
DROP INDEX `invoice_book_status_hash`;--> statement-breakpoint
CREATE INDEX `invoice_book_open_expiry` ON `invoice_book` (`expires_at`) WHERE status = 'open';--> statement-breakpoint
CREATE INDEX `invoice_book_open_hash` ON `invoice_book` (`payment_hash`) WHERE status = 'open';--> statement-breakpoint
DROP INDEX `outbox_acked`;--> statement-breakpoint
CREATE INDEX `outbox_unsigned` ON `outbox` (`id`) WHERE signed_json is null;--> statement-breakpoint
CREATE INDEX `outbox_unacked` ON `outbox` (`id`) WHERE acked_at is null;--> statement-breakpoint
DROP INDEX `jobs_customer_state`;--> statement-breakpoint
DROP INDEX `jobs_client_state`;--> statement-breakpoint
CREATE INDEX `jobs_customer_state` ON `jobs` (`customer_pubkey`,`state`) WHERE customer_pubkey is not null;--> statement-breakpoint
CREATE INDEX `jobs_client_state` ON `jobs` (`client_address`,`state`) WHERE client_address is not null;