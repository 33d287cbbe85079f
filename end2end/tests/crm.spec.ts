import { test, expect } from "@playwright/test";
import { adminPage, checkA11y, newVerifiedCustomer } from "./helpers";

test("the CRM stand-in fails, an admin sees it in integration health, retries after recovery, and the contact appears", async ({ page, browser }) => {
  const admin = await adminPage(browser);
  const crmForm = (p: typeof admin) => p.locator("form", { has: p.getByLabel("CRM stand-in") });

  // The CRM goes down.
  await admin.goto("/admin/standins");
  await admin.getByLabel("CRM stand-in").selectOption("down");
  await crmForm(admin).getByRole("button", { name: "Apply" }).click();
  await expect(admin.getByTestId("crm-state")).toContainText("down (503)");
  await checkA11y(admin);

  // A customer signs up and confirms their email: the CRM push fails and waits.
  const email = await newVerifiedCustomer(page, browser, "Karabo Molefe");
  await admin.goto("/admin/integrations?integration=crm&status=failed");
  const row = admin.locator("tbody tr", { hasText: "crm.flush" }).first();
  await expect(async () => {
    await admin.reload();
    await expect(row).toContainText("503", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await row.getByRole("link").first().click();
  await expect(admin.getByRole("heading", { name: /Job #\d+/ })).toBeVisible();
  const jobUrl = admin.url();

  // The CRM recovers; the admin retries now; the job succeeds and the contact is there.
  await admin.goto("/admin/standins");
  await admin.getByLabel("CRM stand-in").selectOption("normal");
  await crmForm(admin).getByRole("button", { name: "Apply" }).click();
  await expect(admin.getByTestId("crm-state")).toContainText("normal");
  await admin.goto(jobUrl);
  await admin.getByRole("button", { name: "Retry now" }).click();
  await expect(async () => {
    await admin.reload();
    await expect(admin.locator(".page-head .badge")).toHaveText("succeeded", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });

  await admin.goto(`/admin/people?q=${encodeURIComponent(email)}`);
  await expect(admin.locator("tbody tr", { hasText: email })).toContainText(/synced \(contact \d+\)/);
  await checkA11y(admin);
  // And on the stand-in's own page (what the CRM received).
  await admin.goto("/admin/standins");
  const standinPage = await admin.getByRole("link", { name: "Its contacts, requests and webhook deliveries" }).getAttribute("href");
  await admin.goto(standinPage!);
  await expect(admin.getByText(email).first()).toBeVisible();
});
