import { test, expect } from "@playwright/test";
import { PASSWORD, checkA11y, hydrated, unique } from "./helpers";

test("the home page renders on the server and hydrates", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("heading", { level: 1 })).toContainText("Welcome to");
  await hydrated(page);
  await checkA11y(page);
});

test("an interactive element works only after hydration", async ({ browser }) => {
  // With JavaScript off, the show-password toggle cannot work: the page is plain HTML.
  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await plain.goto("/signin");
  await plain.getByRole("button", { name: "Show" }).click();
  await expect(plain.locator("#password")).toHaveAttribute("type", "password");
  await noJs.close();

  // With JavaScript on, once hydrated, the same button toggles the field.
  const js = await browser.newContext();
  const page = await js.newPage();
  await page.goto("/signin");
  await hydrated(page);
  await page.getByRole("button", { name: "Show" }).click();
  await expect(page.locator("#password")).toHaveAttribute("type", "text");
  await expect(page.getByRole("button", { name: "Hide" })).toBeVisible();
  await checkA11y(page);
  await js.close();
});

test("sign-up and sign-in work without JavaScript", async ({ browser }) => {
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  const email = `${unique("nojs")}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Full name").fill("Lerato Mokoena");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("password1");
  await page.getByLabel(/I have read the privacy notice/).check();
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toContainText("too easy to guess");
  await page.getByLabel("Full name").fill("Lerato Mokoena");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByLabel(/I have read the privacy notice/).check();
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { name: "Check your email" })).toBeVisible();

  await page.goto("/signin");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill("not the password at all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("don't match an account");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole("heading", { name: "Hello, Lerato Mokoena" })).toBeVisible();
  await ctx.close();
});

test("unknown pages get the portal's 404 page", async ({ page }) => {
  const res = await page.goto("/no/such/page");
  expect(res?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("We couldn't find that page");
});
