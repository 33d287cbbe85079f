import { test, expect } from "@playwright/test";
import { adminPage, checkA11y } from "./helpers";

test("an admin sees a failing job, retries it after the cause is fixed, and the audit log shows it", async ({ browser }) => {
  const page = await adminPage(browser);

  // Make the SMTP stand-in fail on purpose, then send a test email.
  await page.goto("/admin/standins");
  await page.getByLabel("SMTP catcher answers with").selectOption("unavailable");
  await page.locator("form", { has: page.getByLabel("SMTP catcher answers with") }).getByRole("button", { name: "Apply" }).click();
  await expect(page.getByText("The catcher now answers:")).toContainText("unavailable");
  await page.goto("/admin/mail");
  await page.getByRole("button", { name: "Send me a test email" }).click();

  // The failure shows up in integration health, with the server's reply.
  await page.goto("/admin/integrations?integration=email&status=failed");
  const row = page.locator("tbody tr", { hasText: "email.send" }).first();
  await expect(async () => {
    await page.reload();
    await expect(row).toContainText("421", { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.getByRole("alert").filter({ hasText: "Needs attention" })).toBeVisible();
  await row.getByRole("link").first().click();
  await expect(page.getByRole("heading", { name: /Job #\d+/ })).toBeVisible();
  await expect(page.locator("table")).toContainText("transient error");
  const jobUrl = page.url();
  // (The email policy retries by itself after about 10 s; the admin acts before that.)

  // Fix the cause, then retry now.
  const fix = await browser.newPage({ storageState: await page.context().storageState() });
  await fix.goto("/admin/standins");
  await fix.getByLabel("SMTP catcher answers with").selectOption("accept");
  await fix.locator("form", { has: fix.getByLabel("SMTP catcher answers with") }).getByRole("button", { name: "Apply" }).click();
  await expect(fix.getByText("The catcher now answers:")).toContainText("accept");

  await page.goto(jobUrl);
  await page.getByRole("button", { name: "Retry now" }).click();
  await expect(async () => {
    await page.reload();
    await expect(page.locator(".page-head .badge")).toHaveText("succeeded", { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.locator("ul.audit")).toContainText("job.retry");

  await checkA11y(page);
  await page.goto("/admin/audit?action=job.");
  await expect(page.locator("tbody")).toContainText("job.retry");
  await checkA11y(page);
  await page.goto("/admin/integrations");
  await checkA11y(page);
});
