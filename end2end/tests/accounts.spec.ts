import { test, expect } from "@playwright/test";
import { PASSWORD, adminPage, checkA11y, hydrated, signIn, unique } from "./helpers";

test("a customer signs up, verifies through the mail catcher, signs in and out", async ({ page, browser }) => {
  const email = `${unique("thandi")}@example.com`;
  await page.goto("/signup");
  await hydrated(page);
  await checkA11y(page);
  await page.getByLabel("Full name").fill("Thandi Nkosi");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByLabel(/I have read the privacy notice/).check();
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { name: "Check your email" })).toBeVisible();

  // The verification email arrives in the local mail catcher, shown to admins at /admin/mail.
  const adminView = await adminPage(browser);
  await adminView.goto("/admin/mail");
  const message = adminView.locator("li.mail", { hasText: email }).first();
  await expect(async () => {
    await adminView.reload();
    await expect(message).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await expect(message).toContainText("Confirm your email");
  await message.locator("summary").click();
  const text = await message.locator("pre.mail-text").innerText();
  const link = text.match(/https?:\/\/\S+\/verify-email\?token=[0-9a-f]+/)?.[0];
  expect(link).toBeTruthy();

  await page.goto(new URL(link!).pathname + new URL(link!).search);
  await hydrated(page);
  await page.getByRole("button", { name: "Confirm my email" }).click();
  await expect(page.getByRole("status")).toContainText("Your email is confirmed");

  await signIn(page, email, PASSWORD);
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole("heading", { name: "Hello, Thandi Nkosi" })).toBeVisible();
  await checkA11y(page);
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sign in" })).toBeVisible();
  await page.goto("/account");
  await expect(page.getByText("Please sign in to see this page.")).toBeVisible();
});
