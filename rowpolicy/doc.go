// Package rowpolicy makes a caller's Milvus filter safe to combine with row
// policies, combines it, and checks written rows against policies.
//
// It provides three things, all pure functions of their inputs:
//
//   - Tokenize: a caller's filter split into tokens exactly where Milvus
//     2.6.18's lexer splits it (internal/parser/planparserv2/Plan.g4 at the
//     "Bump milvus version to v2.6.18" commit). A filter that does not
//     tokenise, whose brackets do not balance, or that names
//     $current_user_* is refused, so that it cannot close the parenthesis the
//     combiner puts around it.
//   - Compile and Combine: a policy expression (the restricted form the design
//     of milvus#50263 allows: comparisons, in, and/or/not, $current_user_name,
//     $current_user_tags['key']) is parsed once; Combine renders the policies
//     that apply to a caller with the caller's values as quoted string
//     literals and returns `(<policies>) and (<caller filter>)`.
//   - Check: a check_expr evaluated on the rows of an insert or upsert, as
//     Milvus would read their FieldData, naming the rows that fail.
//
// It does not know which policies apply to whom (the policy store and the
// admission step decide that) and does not rewrite requests.
package rowpolicy
