//! The PII and secret types, and one match.

/// Upper-case type names used everywhere (config, findings, CLI, traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiType {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    UkNin,
    NhsNumber,
    EsDni,
    EsNie,
    ItFiscalCode,
    NlBsn,
    FrNir,
    DeTaxId,
    Passport,
    IpAddress,
    MacAddress,
    UsRoutingNumber,
    DateOfBirth,
    AwsAccessKey,
    AwsSecretKey,
    GithubToken,
    GitlabToken,
    OpenaiApiKey,
    AnthropicApiKey,
    SlackToken,
    GoogleApiKey,
    StripeKey,
    Jwt,
    PrivateKey,
    Secret,
    Person,
    Location,
    Organization,
}

impl PiiType {
    /// Every type, in declaration order.
    pub const ALL: &'static [PiiType] = &[
        PiiType::Email,
        PiiType::Phone,
        PiiType::CreditCard,
        PiiType::Iban,
        PiiType::UsSsn,
        PiiType::UkNin,
        PiiType::NhsNumber,
        PiiType::EsDni,
        PiiType::EsNie,
        PiiType::ItFiscalCode,
        PiiType::NlBsn,
        PiiType::FrNir,
        PiiType::DeTaxId,
        PiiType::Passport,
        PiiType::IpAddress,
        PiiType::MacAddress,
        PiiType::UsRoutingNumber,
        PiiType::DateOfBirth,
        PiiType::AwsAccessKey,
        PiiType::AwsSecretKey,
        PiiType::GithubToken,
        PiiType::GitlabToken,
        PiiType::OpenaiApiKey,
        PiiType::AnthropicApiKey,
        PiiType::SlackToken,
        PiiType::GoogleApiKey,
        PiiType::StripeKey,
        PiiType::Jwt,
        PiiType::PrivateKey,
        PiiType::Secret,
        PiiType::Person,
        PiiType::Location,
        PiiType::Organization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Email => "EMAIL",
            PiiType::Phone => "PHONE",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::Iban => "IBAN",
            PiiType::UsSsn => "US_SSN",
            PiiType::UkNin => "UK_NIN",
            PiiType::NhsNumber => "NHS_NUMBER",
            PiiType::EsDni => "ES_DNI",
            PiiType::EsNie => "ES_NIE",
            PiiType::ItFiscalCode => "IT_FISCAL_CODE",
            PiiType::NlBsn => "NL_BSN",
            PiiType::FrNir => "FR_NIR",
            PiiType::DeTaxId => "DE_TAX_ID",
            PiiType::Passport => "PASSPORT",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::MacAddress => "MAC_ADDRESS",
            PiiType::UsRoutingNumber => "US_ROUTING_NUMBER",
            PiiType::DateOfBirth => "DATE_OF_BIRTH",
            PiiType::AwsAccessKey => "AWS_ACCESS_KEY",
            PiiType::AwsSecretKey => "AWS_SECRET_KEY",
            PiiType::GithubToken => "GITHUB_TOKEN",
            PiiType::GitlabToken => "GITLAB_TOKEN",
            PiiType::OpenaiApiKey => "OPENAI_API_KEY",
            PiiType::AnthropicApiKey => "ANTHROPIC_API_KEY",
            PiiType::SlackToken => "SLACK_TOKEN",
            PiiType::GoogleApiKey => "GOOGLE_API_KEY",
            PiiType::StripeKey => "STRIPE_KEY",
            PiiType::Jwt => "JWT",
            PiiType::PrivateKey => "PRIVATE_KEY",
            PiiType::Secret => "SECRET",
            PiiType::Person => "PERSON",
            PiiType::Location => "LOCATION",
            PiiType::Organization => "ORGANIZATION",
        }
    }

    /// The inverse of [`PiiType::as_str`] (exact, upper case).
    pub fn parse(s: &str) -> Option<PiiType> {
        PiiType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Credentials rather than personal data.
    pub const fn is_secret(self) -> bool {
        matches!(
            self,
            PiiType::AwsAccessKey
                | PiiType::AwsSecretKey
                | PiiType::GithubToken
                | PiiType::GitlabToken
                | PiiType::OpenaiApiKey
                | PiiType::AnthropicApiKey
                | PiiType::SlackToken
                | PiiType::GoogleApiKey
                | PiiType::StripeKey
                | PiiType::Jwt
                | PiiType::PrivateKey
                | PiiType::Secret
        )
    }

    /// Found by a model (NER), never by these patterns.
    pub const fn is_ner(self) -> bool {
        matches!(
            self,
            PiiType::Person | PiiType::Location | PiiType::Organization
        )
    }

    /// The type's bit in a set of types (`u64`: there are fewer than 64 types).
    pub(crate) fn bit(self) -> u64 {
        1u64 << (self as u32)
    }

    /// Tie-break between overlapping matches of equal score: the more
    /// specific type (a checksum, a fixed prefix) wins.
    pub(crate) fn specificity(self) -> u8 {
        match self {
            PiiType::PrivateKey => 100,
            PiiType::AnthropicApiKey
            | PiiType::GithubToken
            | PiiType::GitlabToken
            | PiiType::SlackToken
            | PiiType::StripeKey
            | PiiType::GoogleApiKey
            | PiiType::AwsAccessKey
            | PiiType::Jwt => 95,
            PiiType::OpenaiApiKey => 94,
            PiiType::AwsSecretKey => 92,
            PiiType::Secret => 90,
            PiiType::Iban | PiiType::CreditCard => 85,
            PiiType::ItFiscalCode | PiiType::FrNir => 80,
            PiiType::Email => 78,
            PiiType::EsDni | PiiType::EsNie => 75,
            PiiType::UsSsn => 72,
            PiiType::Passport => 70,
            PiiType::DeTaxId | PiiType::NhsNumber | PiiType::NlBsn | PiiType::UsRoutingNumber => 65,
            PiiType::DateOfBirth => 60,
            PiiType::UkNin => 58,
            PiiType::MacAddress | PiiType::IpAddress => 50,
            PiiType::Phone => 40,
            PiiType::Person | PiiType::Location | PiiType::Organization => 10,
        }
    }
}

impl std::fmt::Display for PiiType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One match. `start..end` are UTF-8 byte offsets into the scanned text, on
/// character boundaries; `score` is in 0..=1 after the context adjustment.
#[derive(Debug, Clone, PartialEq)]
pub struct PiiMatch {
    pub kind: PiiType,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    /// The pattern that fired, e.g. `pii.credit-card`, `secret.github`.
    pub rule: &'static str,
}
