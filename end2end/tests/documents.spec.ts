import { test, expect } from "@playwright/test";
import * as fs from "node:fs";
import { adminPage, checkA11y, hydrated, newVerifiedCustomer } from "./helpers";

/** A small PDF with a marker to recognise it after the round trip. */
function pdf(marker: string): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${marker}\n${"x".repeat(2000)}\n%%EOF\n`);
}

test("a customer uploads a PDF, staff see it and share a report back, the customer downloads it, another customer reaches neither", async ({ page, browser }) => {
  // The customer uploads a signed agreement from their documents page.
  const email = await newVerifiedCustomer(page, browser, "Nomsa Dlamini");
  await page.goto("/documents");
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Documents", level: 1 })).toBeVisible();
  await page.getByLabel("Category").selectOption("agreement");
  await page.getByLabel("File", { exact: true }).setInputFiles({ name: "signed-agreement.pdf", mimeType: "application/pdf", buffer: pdf("signed by Nomsa") });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await expect(page).toHaveURL(/\/documents\?uploaded=1$/);
  await expect(page.getByRole("status")).toContainText("Your file was uploaded.");
  const agreement = page.getByRole("link", { name: "signed-agreement.pdf" });
  await expect(agreement).toBeVisible();
  const agreementUrl = (await agreement.getAttribute("href"))!;
  expect(agreementUrl).toMatch(/^\/documents\/\d+\/download$/);
  await checkA11y(page);

  // Staff (the admin) find the customer, see the upload, and share a report back.
  const admin = await adminPage(browser);
  await admin.goto(`/customers?q=${encodeURIComponent(email)}`);
  await checkA11y(admin);
  await admin.getByRole("link", { name: "Nomsa Dlamini" }).click();
  await expect(admin.getByRole("heading", { name: "Nomsa Dlamini", level: 1 })).toBeVisible();
  await expect(admin.getByRole("link", { name: "signed-agreement.pdf" })).toBeVisible();
  await hydrated(admin);
  const share = admin.locator("section", { has: admin.getByRole("heading", { name: "Share or file a document" }) });
  await share.getByLabel("Category").selectOption("report");
  await expect(share.getByLabel("Shared with the customer (they are emailed)")).toBeChecked();
  await share.getByLabel("File", { exact: true }).setInputFiles({ name: "report.pdf", mimeType: "application/pdf", buffer: pdf("report for Nomsa") });
  await share.getByRole("button", { name: "Upload", exact: true }).click();
  await expect(admin).toHaveURL(/\/customers\/\d+\?uploaded=1$/);
  const report = admin.getByRole("link", { name: "report.pdf" });
  await expect(report).toBeVisible();
  const reportUrl = (await report.getAttribute("href"))!;
  await checkA11y(admin);

  // The customer sees the report and downloads it as an attachment, byte for byte.
  await page.goto("/documents");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "report.pdf" }).click(),
  ]);
  expect(download.suggestedFilename()).toBe("report.pdf");
  const content = fs.readFileSync((await download.path())!);
  expect(content.toString("latin1")).toContain("report for Nomsa");

  // The customer was emailed about the shared report.
  await admin.goto("/admin/mail");
  await expect(async () => {
    await admin.reload();
    await expect(admin.locator("li.mail", { hasText: email }).filter({ hasText: "shared a document with you" }).first()).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await admin.context().close();

  // Another customer gets "not found" for both documents and for the staff pages.
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await newVerifiedCustomer(otherPage, browser, "Pieter Botha");
  for (const url of [agreementUrl, reportUrl]) {
    const res = await otherPage.request.get(url, { maxRedirects: 0 });
    expect(res.status(), url).toBe(404);
  }
  const res = await otherPage.goto("/customers");
  expect(res?.status()).toBe(404);
  await otherPage.goto("/documents");
  await expect(otherPage.getByText("No documents yet.")).toBeVisible();
  await other.close();
});
