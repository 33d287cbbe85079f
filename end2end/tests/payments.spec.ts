import { test, expect } from "@playwright/test";
import { adminPage, checkA11y, hydrated, newVerifiedCustomer } from "./helpers";

test("a customer pays a deposit on the Stripe stand-in, returns, sees the booking confirmed and gets the receipt", async ({ page, browser }) => {
  const email = await newVerifiedCustomer(page, browser, "Ayanda Mokoena");

  await page.goto("/book");
  await page.getByRole("link", { name: "Choose Treatment" }).click();
  let slot = page.locator("a.slot").first();
  if ((await slot.count()) === 0) {
    await page.getByRole("link", { name: "Later →" }).click();
    slot = page.locator("a.slot").first();
  }
  await slot.click();
  await expect(page.getByRole("heading", { name: "Confirm your booking" })).toBeVisible();
  await expect(page.locator("dl.facts")).toContainText("R 150.00");
  await hydrated(page);
  await page.getByRole("button", { name: "Book this time" }).click();

  // Stripe's hosted page (the local stand-in, on its own port).
  await expect(page.getByRole("button", { name: "Pay R 150.00" })).toBeVisible({ timeout: 20_000 });
  expect(new URL(page.url()).pathname).toMatch(/^\/pay\/cs_/);
  await page.getByRole("button", { name: "Pay R 150.00" }).click();

  // Back on the portal: "confirming" until the webhook has been applied, then confirmed.
  await expect(page).toHaveURL(/\/bookings\/\d+\/paid/);
  await expect(async () => {
    await page.reload();
    await expect(page.locator("[data-state]")).toHaveAttribute("data-state", "confirmed", { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(page.getByRole("heading", { name: "Booking confirmed" })).toBeVisible();
  await checkA11y(page);

  // The booking page shows the payment with its receipt; the receipt shows the VAT split.
  await page.getByRole("link", { name: "View the booking" }).click();
  await expect(page.locator(".page-head .badge")).toHaveText("confirmed");
  await page.locator("table a", { hasText: /^D\d{6}$/ }).first().click();
  await expect(page.getByRole("heading", { name: /^Receipt D\d{6}$/ })).toBeVisible();
  await expect(page.locator("dl.facts")).toContainText("R 150.00");
  await expect(page.locator("dl.facts")).toContainText("R 19.57");
  await checkA11y(page);

  // The receipt email reached the mail catcher.
  const admin = await adminPage(browser);
  await expect(async () => {
    await admin.goto("/admin/mail");
    await expect(admin.locator("li.mail", { hasText: email }).filter({ hasText: "Receipt D" }).first()).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });

  // Admins see the payment in the list.
  await admin.goto("/admin/payments?status=paid");
  await expect(admin.getByRole("cell", { name: "Ayanda Mokoena" }).first()).toBeVisible();
  await checkA11y(admin);
});
