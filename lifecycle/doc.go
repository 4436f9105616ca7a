// Package lifecycle parses, validates and evaluates Amazon ECR lifecycle
// policies for Berth's local repositories.
//
// The package is pure: Parse turns policy JSON into a *Policy, Evaluate
// computes which of an injected list of images a policy expires at an
// injected instant (a preview is the same call), and Summarize totals the
// result. Nothing is read, written or deleted here; applying the result is
// the caller's job.
//
// # Sources
//
// /work/shared/reference/ecr-walkthrough.txt states only that rule priorities
// must be unique and need not be sequential, that imageCountMoreThan takes a
// countNumber and sinceImagePushed a countUnit and a countNumber, and that
// expire is the only action. The other references mention lifecycle policies
// without detail. Everything else below follows the Amazon ECR User Guide:
// "Lifecycle policy properties" (lifecycle_policy_parameters), "Automate the
// cleanup of images by using lifecycle policies" (LifecyclePolicies, section
// on evaluation rules) and "Examples of lifecycle policies"
// (lifecycle_policy_examples). Sentences are paraphrased.
//
// # Validation (Parse, Policy.Validate)
//
//   - The document is {"rules":[...]} with at least one rule. Unknown fields,
//     duplicate fields and wrong JSON types are refused (Berth's strictness;
//     ECR documents only the template). Field names are case-sensitive. A
//     null value counts as an absent field.
//   - rulePriority is required, a positive integer, unique within the
//     policy; values need not be sequential (walkthrough; properties page).
//   - A rule whose tagStatus is any must have the highest rulePriority, so it
//     is evaluated last (properties page). Hence at most one such rule.
//   - tagStatus is required: tagged, untagged or any. With tagged, a
//     tagPrefixList or a tagPatternList must be given, but not both; with
//     untagged (and, Berth adds, any) both must be omitted (properties page).
//   - tagPatternList entries may hold at most four '*' wildcards (properties
//     page). Berth also refuses empty lists, empty entries, and '*' in
//     tagPrefixList entries: tags cannot contain '*', so such a prefix could
//     never match and is surely a mistaken pattern.
//   - Only one rule may select untagged images (evaluation rules).
//   - countType is required: imageCountMoreThan, sinceImagePushed or
//     sinceImagePulled. countUnit is used only with the two age types, for
//     which it is required and must be "days"; with imageCountMoreThan it is
//     refused (properties page).
//   - countNumber is required and a positive integer (at most 2^31-1).
//   - action.type is required and must be "expire", the only supported
//     action (walkthrough). ECR's newer archive storage class
//     ("transition", storageClass, sinceImageTransitioned) is not supported.
//
// Every problem is reported at once: the error wraps ErrInvalidPolicy and
// joins one *FieldError per offending field, named by a path such as
// rules[1].selection.countUnit where the index is the rule's position in the
// document (from 0), not its rulePriority. A problem with a field hides the
// consequential problems of the fields inside it.
//
// # Evaluation (Evaluate)
//
//   - Rules are applied in ascending rulePriority (properties page).
//   - Each rule first identifies the images meeting its tagging requirements
//     (tagStatus and tag list), among all images of the repository.
//   - untagged matches images without tags; any matches every image; tagged
//     matches images with at least one tag that satisfy the tag list.
//   - tagPrefixList: an image matches when every listed prefix is a prefix of
//     at least one of its tags (evaluation rules: "matched if all of the tags
//     in the tagPrefixList value are matched against any of the image's
//     tags"). The lists are an AND, not an OR: ["v2","prod"] selects an image
//     tagged v2.1 and prod-eu, but not one tagged only prod-eu.
//   - tagPatternList: likewise every pattern must match at least one tag
//     ("if you specify multiple tags, only the images with all specified tags
//     are selected"). A pattern matches a whole tag; '*' matches any run of
//     characters, including none; every other character is literal and
//     case-sensitive, so a pattern without '*' is an exact tag.
//   - imageCountMoreThan: the identified images are sorted by push time,
//     newest first, and all beyond the first countNumber are expired
//     (evaluation rules). Equal push times are ordered by digest.
//   - sinceImagePushed: identified images pushed more than countNumber days
//     before now are expired. sinceImagePulled: the same with the last
//     recorded pull time, or the push time if the image was never pulled
//     (evaluation rules). A day is 24 hours; an image exactly countNumber days
//     old is not expired ("older than"). A zero PushedAt counts as very old.
//   - An image is expired by exactly one rule or none (evaluation rules).
//   - An image that meets the tagging requirements of a higher-priority rule
//     cannot be expired by a lower-priority rule, whether or not that rule
//     expired it (evaluation rules). This is how a rule such as "tagged
//     prod*, imageCountMoreThan 9999" protects production images from a
//     later "any, sinceImagePushed 30" rule.
//   - A rule never expires an image a higher-priority rule already expired,
//     but still identifies it as if it had not been expired (evaluation
//     rules). In particular, images expired by an earlier rule still occupy
//     places among the countNumber newest images of a later
//     imageCountMoreThan rule. The ECR examples page illustrates this: with
//     rule 1 "prod, more than 1" and rule 2 "beta, more than 1", rule 2
//     counts image A although rule 1 expired it.
//
// Results are ordered by rule priority, then push time newest first, then
// digest.
package lifecycle
