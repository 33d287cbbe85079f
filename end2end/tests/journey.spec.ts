import { test, expect } from "@playwright/test";
import * as fs from "node:fs";
import { adminPage, checkA11y, hydrated, newVerifiedCustomer } from "./helpers";

function pdf(marker: string): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${marker}\n${"x".repeat(2000)}\n%%EOF\n`);
}

/** Waits until the mail catcher shows a message to `to` containing `text`, and returns it. */
async function mailTo(admin: import("@playwright/test").Page, to: string, text: string | RegExp) {
  const item = admin.locator("li.mail", { hasText: to }).filter({ hasText: text }).first();
  await expect(async () => {
    await admin.goto("/admin/mail");
    await expect(item).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  return item;
}

test("the whole journey: sign up, book and pay, documents both ways, cancel and refund, and a CRM outage handled by an admin", async ({ page: first, browser }) => {
  let page = first;
  test.setTimeout(240_000);
  const admin = await adminPage(browser);

  // The CRM goes down before the customer arrives.
  await admin.goto("/admin/standins");
  await admin.getByLabel("CRM stand-in").selectOption("down");
  await admin.locator("form", { has: admin.getByLabel("CRM stand-in") }).getByRole("button", { name: "Apply" }).click();
  await expect(admin.getByTestId("crm-state")).toContainText("down (503)");

  // 1. A customer signs up and verifies through the mail catcher.
  const email = await newVerifiedCustomer(page, browser, "Lerato Mahlangu");

  // 2. They book a service with a deposit (at most four steps) and pay on the Stripe stand-in.
  await page.goto("/book");
  await page.getByRole("link", { name: "Choose Treatment" }).click();
  let slot = page.locator("a.slot").first();
  if ((await slot.count()) === 0) {
    await page.getByRole("link", { name: "Later →" }).click();
    slot = page.locator("a.slot").last();
  } else {
    slot = page.locator("a.slot").last();
  }
  await slot.click();
  await expect(page.locator("dl.facts")).toContainText("R 150.00");
  await expect(page.locator("dl.facts")).toContainText("Free to move or cancel");
  await hydrated(page);
  await page.getByRole("button", { name: "Book this time" }).click();
  await page.getByRole("button", { name: "Pay R 150.00" }).click();
  await expect(async () => {
    await page.reload();
    await expect(page.locator("[data-state]")).toHaveAttribute("data-state", "confirmed", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await page.getByRole("link", { name: "View the booking" }).click();
  await expect(page.locator(".page-head .badge")).toHaveText("confirmed");
  const bookingUrl = page.url();

  // 3. The confirmation with its calendar file, and the receipt, reach the mail catcher.
  const confirmation = await mailTo(admin, email, "Booking confirmed");
  await expect(confirmation).toContainText("booking.ics");
  await mailTo(admin, email, /Receipt D\d+/);

  // 4. The customer uploads a document.
  await page.goto("/documents");
  await hydrated(page);
  await page.getByLabel("Category").selectOption("id");
  await page.getByLabel("File", { exact: true }).setInputFiles({ name: "id-copy.pdf", mimeType: "application/pdf", buffer: pdf("Lerato's ID") });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await expect(page.getByRole("link", { name: "id-copy.pdf" })).toBeVisible();

  // 5. Staff see the booking and the document, and share a report.
  await admin.goto("/staff?view=day");
  await expect(admin.getByRole("heading", { name: "My day" })).toBeVisible();
  await admin.goto("/admin/bookings?status=confirmed");
  await expect(admin.locator("tbody tr", { hasText: "Lerato Mahlangu" }).first()).toContainText("Treatment");
  await admin.goto(`/customers?q=${encodeURIComponent(email)}`);
  await admin.getByRole("link", { name: "Lerato Mahlangu" }).click();
  await expect(admin.getByRole("link", { name: "id-copy.pdf" })).toBeVisible();
  await hydrated(admin);
  // The customer page shows the payment, and takes a note for colleagues.
  await expect(admin.getByRole("heading", { name: "Payments" })).toBeVisible();
  await admin.getByLabel("New note").fill("Prefers morning appointments.");
  await admin.getByRole("button", { name: "Add note" }).click();
  await expect(admin.getByText(/Prefers morning appointments\./)).toBeVisible();
  await checkA11y(admin);
  const share = admin.locator("section", { has: admin.getByRole("heading", { name: "Share or file a document" }) });
  await share.getByLabel("Category").selectOption("report");
  await share.getByLabel("File", { exact: true }).setInputFiles({ name: "treatment-report.pdf", mimeType: "application/pdf", buffer: pdf("report for Lerato") });
  await share.getByRole("button", { name: "Upload", exact: true }).click();
  await expect(admin.getByRole("link", { name: "treatment-report.pdf" })).toBeVisible();

  // 6. The customer downloads the report.
  await page.goto("/documents");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "treatment-report.pdf" }).click(),
  ]);
  expect(fs.readFileSync((await download.path())!).toString("latin1")).toContain("report for Lerato");
  // (A fresh tab from here: the one that started a download can stall its next navigation.)
  const downloaded = page;
  page = await downloaded.context().newPage();
  await downloaded.close();

  // 7. They cancel inside the free window and are refunded.
  await page.goto(bookingUrl);
  await hydrated(page);
  await expect(page.getByText("Your deposit of R 150.00 will be refunded.")).toBeVisible();
  await page.getByRole("button", { name: "Cancel booking" }).click();
  await expect(page.locator(".page-head .badge")).toHaveText("cancelled");
  await mailTo(admin, email, "Refund of R 150.00");
  await page.goto("/payments");
  await expect(page.locator("tbody tr").first()).toContainText("refunded");
  await checkA11y(page);

  // 8. Meanwhile the CRM was down: the admin sees it, the CRM recovers, the admin retries.
  await admin.goto("/admin/integrations?integration=crm&status=failed");
  const row = admin.locator("tbody tr", { hasText: "crm.flush" }).first();
  await expect(async () => {
    await admin.reload();
    await expect(row).toContainText("503", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await admin.goto("/admin/standins");
  await admin.getByLabel("CRM stand-in").selectOption("normal");
  await admin.locator("form", { has: admin.getByLabel("CRM stand-in") }).getByRole("button", { name: "Apply" }).click();
  await expect(admin.getByTestId("crm-state")).toContainText("normal");
  await admin.goto("/admin/integrations?integration=crm&status=failed");
  await admin.getByRole("button", { name: /Retry all/ }).click();
  await expect(async () => {
    await admin.goto(`/admin/people?q=${encodeURIComponent(email)}`);
    await expect(admin.locator("tbody tr", { hasText: email })).toContainText(/synced \(contact \d+\)/, { timeout: 1000 });
  }).toPass({ timeout: 45_000 });
  await checkA11y(admin);
});
